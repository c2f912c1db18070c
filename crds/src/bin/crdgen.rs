//! Prints the TrainingJob CRD as YAML, or writes it to the file given as the only argument.

fn main() -> std::io::Result<()> {
    let yaml = ferrotune_crds::crd_yaml();
    match std::env::args_os().nth(1) {
        Some(path) => std::fs::write(path, yaml),
        None => {
            print!("{yaml}");
            Ok(())
        }
    }
}

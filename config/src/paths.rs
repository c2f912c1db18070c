//! Path expansion for paths written in configs: `~`, `$VAR`, `${VAR}` and `${VAR:-default}`.

use std::path::PathBuf;

/// Expands a leading `~` to $HOME, and `$VAR`, `${VAR}` and `${VAR:-default}` (the default used
/// when VAR is unset or empty; it may itself start with `~`). An unset variable without a default
/// is an error naming it.
pub fn expand(path: &str) -> Result<PathBuf, String> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    if let Some(tail) = rest.strip_prefix('~')
        && (tail.is_empty() || tail.starts_with('/'))
    {
        out.push_str(&var("HOME")?);
        rest = tail;
    }
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{path}`"))?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            out.push('$');
        } else if let Some((name, default)) = name.split_once(":-") {
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => out.push_str(&v),
                _ => out.push_str(&expand(default)?.to_string_lossy()),
            }
        } else {
            out.push_str(&var(name)?);
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok(PathBuf::from(out))
}

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| {
        format!("environment variable `{name}` is not set; set it, or write `${{{name}:-default}}`")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_home_and_variables() {
        let home = std::env::var("HOME").unwrap();
        assert_eq!(
            expand("~/m.gguf").unwrap(),
            PathBuf::from(format!("{home}/m.gguf"))
        );
        assert_eq!(
            expand("${HOME}/a/$HOME").unwrap(),
            PathBuf::from(format!("{home}/a/{home}"))
        );
        assert_eq!(expand("plain/x~y").unwrap(), PathBuf::from("plain/x~y"));
        assert_eq!(
            expand("${FERROTUNE_SURELY_UNSET_VAR:-~/.cache}/m").unwrap(),
            PathBuf::from(format!("{home}/.cache/m"))
        );
        assert_eq!(expand("${HOME:-/elsewhere}").unwrap(), PathBuf::from(&home));
        let err = expand("${FERROTUNE_SURELY_UNSET_VAR}/x").unwrap_err();
        assert!(err.contains("FERROTUNE_SURELY_UNSET_VAR"), "{err}");
    }
}

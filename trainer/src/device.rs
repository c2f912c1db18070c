//! Where tensors live and in which precision, resolved from the config and this build.

use anyhow::bail;
use candle_core::{DType, Device};
use ferrotune_config::{DeviceKind, Precision};

/// The device for this process: the GPU of its local rank, or the CPU.
pub fn resolve(kind: DeviceKind, local_rank: usize) -> anyhow::Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda => cuda(local_rank),
        DeviceKind::Auto if cfg!(feature = "cuda") => Ok(cuda(local_rank).unwrap_or(Device::Cpu)),
        DeviceKind::Auto => Ok(Device::Cpu),
    }
}

fn cuda(local_rank: usize) -> anyhow::Result<Device> {
    if !cfg!(feature = "cuda") {
        bail!(
            "training.device is cuda, but this ferrotune binary was built without CUDA support: \
             use a CUDA build (cargo build --features cuda, or the -cuda image) or set training.device: cpu"
        );
    }
    Device::new_cuda(local_rank).map_err(|e| {
        anyhow::anyhow!(
            "cannot open CUDA device {local_rank}: {e} (is a GPU visible to this process?)"
        )
    })
}

/// Precision of weights and activations on `device`.
pub fn dtype(precision: Precision, device: &Device) -> anyhow::Result<DType> {
    match (precision, device.is_cuda()) {
        (Precision::F32, _) | (Precision::Auto, false) => Ok(DType::F32),
        (Precision::Bf16, true) | (Precision::Auto, true) => Ok(DType::BF16),
        (Precision::Bf16, false) => {
            bail!("training.dtype bf16 needs a CUDA device; on the CPU use f32 (or auto)")
        }
    }
}

/// Human-readable name of a device, for logs and reports.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
        Device::Cuda(_) => "cuda".to_string(),
        Device::Metal(_) => "metal".to_string(),
    }
}

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
    let device = Device::new_cuda(local_rank).map_err(|e| {
        anyhow::anyhow!(
            "cannot open CUDA device {local_rank}: {e} (is a GPU visible to this process?)"
        )
    })?;
    #[cfg(feature = "cuda")]
    pool::keep_freed_memory(&device)?;
    Ok(device)
}

/// Peak bytes in use in the GPU's memory pool since the process started (what candle allocates
/// from), or `None` on the CPU.
pub fn peak_gpu_bytes(device: &Device) -> anyhow::Result<Option<u64>> {
    #[cfg(feature = "cuda")]
    if device.is_cuda() {
        return Ok(Some(pool::used_high(device)?));
    }
    let _ = device;
    Ok(None)
}

/// The CUDA driver's default memory pool, from which candle's stream-ordered allocations come.
#[cfg(feature = "cuda")]
mod pool {
    use anyhow::{Context, ensure};
    use candle_core::Device;
    use cudarc::driver::sys;

    fn default_pool(device: &Device) -> anyhow::Result<sys::CUmemoryPool> {
        let dev = device.as_cuda_device()?;
        let stream = dev.cuda_stream();
        let mut pool = std::ptr::null_mut();
        // SAFETY: `pool` is a valid out-pointer and the device handle comes from a live context.
        let rc = unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, stream.context().cu_device()) };
        ensure!(
            rc == sys::CUresult::CUDA_SUCCESS,
            "cuDeviceGetDefaultMemPool: {rc:?}"
        );
        Ok(pool)
    }

    /// Keeps freed memory in the pool instead of returning it to the driver at every
    /// synchronisation (the default threshold, 0, makes each step re-grow the pool).
    pub(super) fn keep_freed_memory(device: &Device) -> anyhow::Result<()> {
        let pool = default_pool(device)?;
        let mut threshold = u64::MAX;
        // SAFETY: the attribute takes a u64 by pointer.
        let rc = unsafe {
            sys::cuMemPoolSetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut threshold as *mut u64).cast(),
            )
        };
        ensure!(
            rc == sys::CUresult::CUDA_SUCCESS,
            "setting the memory pool's release threshold: {rc:?}"
        );
        Ok(())
    }

    /// High-water mark of the pool's used bytes.
    pub(super) fn used_high(device: &Device) -> anyhow::Result<u64> {
        let pool = default_pool(device).context("reading peak GPU memory")?;
        let mut value = 0u64;
        // SAFETY: the attribute is a u64 written through the pointer.
        let rc = unsafe {
            sys::cuMemPoolGetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                (&mut value as *mut u64).cast(),
            )
        };
        ensure!(
            rc == sys::CUresult::CUDA_SUCCESS,
            "cuMemPoolGetAttribute: {rc:?}"
        );
        Ok(value)
    }
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

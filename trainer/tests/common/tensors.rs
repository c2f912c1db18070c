//! Reading reference tensors from the committed `.safetensors` fixtures.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// A `.safetensors` fixture read into memory.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TensorFile {
    /// Reads the file; panics with its path when it cannot.
    pub fn open(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref().to_path_buf();
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Self { path, bytes }
    }

    /// The names of the tensors in the file.
    pub fn names(&self) -> Vec<String> {
        self.tensors()
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// The shape of tensor `name`.
    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.raw(name, None).0
    }

    /// Tensor `name` as f32 values (it must be stored as F32).
    pub fn f32(&self, name: &str) -> Vec<f32> {
        let (_, data) = self.raw(name, Some(Dtype::F32));
        data.chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    /// Tensor `name` as f64 values (it must be stored as F64).
    pub fn f64(&self, name: &str) -> Vec<f64> {
        let (_, data) = self.raw(name, Some(Dtype::F64));
        data.chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    /// Tensor `name` as i64 values (it must be stored as I64).
    pub fn i64(&self, name: &str) -> Vec<i64> {
        let (_, data) = self.raw(name, Some(Dtype::I64));
        data.chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    /// Tensor `name` as bytes (it must be stored as U8).
    pub fn u8(&self, name: &str) -> Vec<u8> {
        self.raw(name, Some(Dtype::U8)).1
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()))
    }

    fn raw(&self, name: &str, dtype: Option<Dtype>) -> (Vec<usize>, Vec<u8>) {
        let tensors = self.tensors();
        let view = tensors
            .tensor(name)
            .unwrap_or_else(|e| panic!("{}: tensor {name}: {e}", self.path.display()));
        if let Some(dtype) = dtype {
            assert_eq!(
                view.dtype(),
                dtype,
                "{}: tensor {name} has dtype {:?}",
                self.path.display(),
                view.dtype()
            );
        }
        (view.shape().to_vec(), view.data().to_vec())
    }
}

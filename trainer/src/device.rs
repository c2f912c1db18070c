//! Where tensors live and in which precision, resolved from the config and this build.

pub mod data;
pub mod host_bin;
pub mod vm;

pub mod data;
pub mod vm;

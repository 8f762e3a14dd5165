pub mod compare_plot;
pub mod data;
pub mod host_bin;
pub mod vm;

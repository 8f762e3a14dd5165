pub mod compare_plot;
pub mod data;
pub mod host_bin;
pub mod lsscsi_compare;
pub mod quiet_gate;
pub mod vm;

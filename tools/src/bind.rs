//! `uvio bind` and `uvio unbind`.

use uvio::binding::{bind_to_vfio, unbind_from_vfio, BindError, BindOutcome};
use uvio::pci::{PciAddress, Sysfs};

use crate::command::CmdResult;

fn each(
    functions: &[PciAddress],
    action: fn(&Sysfs, PciAddress) -> Result<BindOutcome, BindError>,
) -> CmdResult {
    let sysfs = Sysfs::system();
    let mut failed = 0;
    for &bdf in functions {
        match action(&sysfs, bdf) {
            Ok(BindOutcome::Moved { from, to }) => {
                println!("{bdf}: {} -> {to}", from.as_deref().unwrap_or("no driver"))
            }
            Ok(BindOutcome::AlreadyBound(driver)) => println!("{bdf}: already bound to {driver}"),
            Err(e) => {
                eprintln!("uvio: error: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} of {} functions failed", functions.len()).into());
    }
    Ok(())
}

pub fn bind(functions: &[PciAddress]) -> CmdResult {
    each(functions, bind_to_vfio)
}

pub fn unbind(functions: &[PciAddress]) -> CmdResult {
    each(functions, unbind_from_vfio)
}

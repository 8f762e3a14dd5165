//! The concurrent scan against the simulated host (QEMU's replies, byte for byte as the
//! sequential scan's tests get them): the same result, in the same order, as the
//! sequential scan, with targets that answer slowly and targets that answer BUSY.

use std::collections::BTreeMap;

use super::*;

/// A queue in front of the simulated host: at most `depth` commands in flight; each is
/// answered `delay[target]` polls after it was submitted (1 if not named), BUSY while
/// `busy[target]` is above zero.
struct FakePort {
    host: FakeHost,
    depth: usize,
    polls: u64,
    in_flight: Vec<(u64, usize, LunCommand)>,
    delay: BTreeMap<u16, u64>,
    busy: BTreeMap<u16, usize>,
    /// (target, Linux LUN, CDB) of every command, in the order it was submitted.
    log: Vec<(u16, u64, Vec<u8>)>,
    most_in_flight: usize,
}

impl FakePort {
    fn new(host: FakeHost, depth: usize) -> Self {
        FakePort {
            host,
            depth,
            polls: 0,
            in_flight: Vec::new(),
            delay: BTreeMap::new(),
            busy: BTreeMap::new(),
            log: Vec::new(),
            most_in_flight: 0,
        }
    }
}

impl CommandPort for FakePort {
    fn room(&self) -> usize {
        self.depth - self.in_flight.len()
    }

    fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn submit(&mut self, key: usize, command: LunCommand) -> Result<(), PortRefusal> {
        if self.in_flight.len() >= self.depth {
            return Err(PortRefusal::Full);
        }
        self.log.push((
            command.target,
            command.linux_lun,
            command.cdb.as_bytes().to_vec(),
        ));
        let delay = self.delay.get(&command.target).copied().unwrap_or(1);
        self.in_flight.push((self.polls + delay, key, command));
        self.most_in_flight = self.most_in_flight.max(self.in_flight.len());
        Ok(())
    }

    fn kick(&mut self) {}

    fn poll(&mut self, done: &mut dyn FnMut(usize, Result<Vec<u8>, IoError>)) {
        self.polls += 1;
        let now = self.polls;
        let (due, waiting): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|&(at, _, _)| at <= now);
        self.in_flight = waiting;
        for (_, key, command) in due {
            let answer = match self.busy.get_mut(&command.target) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    Err(busy())
                }
                _ => self.host.run(command),
            };
            done(key, answer);
        }
    }
}

/// Logs what the sequential scan sends, as [`FakePort`] does.
struct Logged {
    host: FakeHost,
    log: Vec<(u16, u64, Vec<u8>)>,
}

impl CommandRunner for Logged {
    fn run(&mut self, command: LunCommand) -> Result<Vec<u8>, IoError> {
        self.log.push((
            command.target,
            command.linux_lun,
            command.cdb.as_bytes().to_vec(),
        ));
        self.host.run(command)
    }

    fn sleep(&mut self, pause: Duration) {
        self.host.sleep(pause);
    }
}

const MAX_LUN: u64 = 16383 + 1 + 0x4000;

/// 48 target ids: every fifth has no target; every seventh from 3 has no LUN 0 and sparse
/// LUNs 5 and 300 (a 4 KiB-block disk); every eleventh from 4 is a CD-ROM; the others
/// have disks at LUNs 0 to 3 (LUN 2 read-only), target 1 twelve of them.
fn many_targets() -> FakeHost {
    let mut targets = BTreeMap::new();
    for t in 0u16..48 {
        if t % 5 == 0 && t != 0 {
            continue;
        }
        let luns = if t % 7 == 3 {
            BTreeMap::from([
                (5, disk(1000 + u64::from(t))),
                (
                    300,
                    FakeLun {
                        block_size: 4096,
                        ..disk(256)
                    },
                ),
            ])
        } else if t % 11 == 4 {
            BTreeMap::from([(0, FakeLun { pdt: 5, ..disk(1) })])
        } else {
            let count = if t == 1 { 12 } else { 4 };
            (0..count)
                .map(|n| {
                    let lun = FakeLun {
                        read_only: n == 2,
                        serial: (n == 0).then_some("SER"),
                        ..disk(2048 * (u64::from(t) + 1) + u64::from(n))
                    };
                    (n, lun)
                })
                .collect()
        };
        targets.insert(t, luns);
    }
    FakeHost::new(targets)
}

fn all_targets() -> Vec<u16> {
    (0..=63).collect()
}

fn slow_and_busy(port: &mut FakePort) {
    for t in 0u16..48 {
        port.delay.insert(t, 1 + u64::from(t % 4) * 10);
    }
    // Target 6 answers BUSY to its first three commands, target 13 to its first.
    port.busy.insert(6, 3);
    port.busy.insert(13, 1);
}

#[test]
fn the_concurrent_scan_finds_what_the_sequential_scan_finds_in_its_order() {
    let sequential = scan_host(&mut many_targets(), 63, MAX_LUN);
    assert!(sequential.luns.len() > 100, "{}", sequential.luns.len());
    assert!(sequential.warnings.is_empty(), "{:?}", sequential.warnings);

    let mut port = FakePort::new(many_targets(), 64);
    slow_and_busy(&mut port);
    let progress = ScanProgress::default();
    let concurrent = scan_targets(&mut port, &all_targets(), MAX_LUN, 16, Some(&progress));
    assert_eq!(concurrent, sequential);
    assert!(port.most_in_flight > 8, "{}", port.most_in_flight);
    assert!(
        port.busy.values().all(|&n| n == 0),
        "the BUSY answers were sent"
    );
    assert!(progress.finished());
    assert_eq!(progress.targets(), 64);
    assert_eq!(progress.targets_done(), 64);
    assert_eq!(progress.luns_found() as usize, sequential.luns.len());

    // The same port one target at a time: many times the polls (the time). The margin is
    // wide: while BUSY back-offs (real time) run beside commands in flight, the concurrent
    // loop polls on, so its count depends on the machine's speed (4.9x fewer polls seen in
    // a CI run, against the sequential scan's fixed count).
    let mut one = FakePort::new(many_targets(), 64);
    slow_and_busy(&mut one);
    assert_eq!(
        scan_targets(&mut one, &all_targets(), MAX_LUN, 1, None),
        sequential
    );
    assert_eq!(one.most_in_flight, 1);
    assert!(
        port.polls * 2 < one.polls,
        "concurrent {} polls, one at a time {}",
        port.polls,
        one.polls
    );
    // Every command the sequential scan sends, and BUSY's resends, nothing else.
    let mut sent = port.log.clone();
    let mut sent_one = one.log.clone();
    sent.sort();
    sent_one.sort();
    assert_eq!(sent, sent_one);
}

#[test]
fn one_target_at_a_time_sends_the_sequential_scans_commands_in_its_order() {
    let mut logged = Logged {
        host: many_targets(),
        log: Vec::new(),
    };
    let sequential = scan_host(&mut logged, 63, MAX_LUN);
    let mut port = FakePort::new(many_targets(), 64);
    port.delay.insert(1, 7);
    let report = scan_targets(&mut port, &all_targets(), MAX_LUN, 1, None);
    assert_eq!(report, sequential);
    assert_eq!(port.log, logged.log);
}

#[test]
fn what_is_in_flight_stays_within_the_queue_depth() {
    let sequential = scan_host(&mut many_targets(), 63, MAX_LUN);
    let mut port = FakePort::new(many_targets(), 4);
    slow_and_busy(&mut port);
    let report = scan_targets(&mut port, &all_targets(), MAX_LUN, 64, None);
    assert_eq!(report, sequential);
    assert_eq!(port.most_in_flight, 4);
}

#[test]
fn the_luns_of_a_report_luns_list_are_probed_side_by_side_one_command_each() {
    let sequential = scan_host(&mut many_targets(), 1, MAX_LUN);
    let mut port = FakePort::new(many_targets(), 64);
    port.delay.insert(1, 5);
    // Target 1 alone: twelve LUNs.
    let report = scan_targets(&mut port, &[1], MAX_LUN, 8, None);
    let target1: Vec<_> = sequential
        .luns
        .iter()
        .filter(|l| l.target == 1)
        .cloned()
        .collect();
    assert_eq!(report.luns, target1);
    assert_eq!(report.luns.len(), 12);
    assert!(port.most_in_flight >= 8, "{}", port.most_in_flight);
    // One command per LUN at a time: the INQUIRYs of LUNs 1..11 went out together, each
    // LUN once before any LUN's second command.
    let inquiries: Vec<u64> = port
        .log
        .iter()
        .skip_while(|(_, _, cdb)| cdb[0] != 0xa0)
        .skip(1)
        .take(11)
        .map(|&(_, lun, _)| lun)
        .collect();
    assert_eq!(inquiries, (1..=11).collect::<Vec<u64>>());
}

fn transport_failure() -> IoError {
    ScsiError::Response {
        code: response::TRANSPORT_FAILURE,
        name: "TRANSPORT_FAILURE",
    }
    .into()
}

/// The sequential scan with LUN 0:1:4 answering nothing but TRANSPORT_FAILURE.
struct DeadLun(FakeHost);

impl CommandRunner for DeadLun {
    fn run(&mut self, command: LunCommand) -> Result<Vec<u8>, IoError> {
        if (command.target, command.linux_lun) == (1, 4) {
            return Err(transport_failure());
        }
        self.0.run(command)
    }
}

#[test]
fn a_lun_that_does_not_answer_ends_its_targets_scan_as_in_the_sequential_scan() {
    let sequential = scan_host(&mut DeadLun(many_targets()), 63, MAX_LUN);
    let aborted = warnings_with(&sequential, "scan of the target aborted");
    assert_eq!(aborted.len(), 1, "{:?}", sequential.warnings);
    assert!(aborted[0].starts_with("0:1:4: no response"), "{aborted:?}");
    let target1 = sequential.luns.iter().filter(|l| l.target == 1).count();
    assert_eq!(target1, 4, "LUNs 0 to 3; 5 to 11 are not probed");

    let mut port = FakePort::new(many_targets(), 64);
    port.delay.insert(1, 3);
    // Every command to 0:1:4 fails (a busy count that does not run out, as TRANSPORT_FAILURE).
    let report = {
        struct Dead<'a>(&'a mut FakePort);
        impl CommandPort for Dead<'_> {
            fn room(&self) -> usize {
                self.0.room()
            }
            fn in_flight(&self) -> usize {
                self.0.in_flight()
            }
            fn submit(&mut self, key: usize, command: LunCommand) -> Result<(), PortRefusal> {
                if (command.target, command.linux_lun) == (1, 4) {
                    return Err(PortRefusal::Failed(transport_failure()));
                }
                self.0.submit(key, command)
            }
            fn kick(&mut self) {}
            fn poll(&mut self, done: &mut dyn FnMut(usize, Result<Vec<u8>, IoError>)) {
                self.0.poll(done)
            }
        }
        scan_targets(&mut Dead(&mut port), &all_targets(), MAX_LUN, 16, None)
    };
    assert_eq!(report, sequential);
}

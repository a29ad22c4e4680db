//! How many samples and how long, per mode (`--full`, `--quick`).

use std::time::Duration;

/// Sample counts and durations for one mode.
#[derive(Debug, Clone)]
pub struct Params {
    /// Quick mode (fewer samples; the figures are not meaningful).
    pub quick: bool,
    /// Workload 1: (warm-up payloads, measured payloads) of 32 bytes.
    pub lat32: (usize, usize),
    /// Workload 2: (warm-up payloads, measured payloads) of 128000 bytes.
    pub lat128k: (usize, usize),
    /// Workload 3: how long to send.
    pub throughput_run: Duration,
    /// Workload 3: how long to wait for the rest after sending.
    pub throughput_drain: Duration,
    /// Workload 4: the numbers of receivers.
    pub fanout_receivers: Vec<usize>,
    /// Workload 4: payloads per number of receivers.
    pub fanout_samples: usize,
    /// Workload 5: joins measured.
    pub join_samples: usize,
    /// Workload 6: (connections, rooms, channels).
    pub memory: (usize, usize, usize),
    /// Workload 7: wall-clock time per measured path.
    pub wire_budget: Duration,
    /// Workload 7: (payload size, N1, N2) of the two callgrind runs.
    pub callgrind: [(usize, u64, u64); 2],
    /// Workload 8: 128000-byte payloads measured on a rate-limited server.
    pub throttled_lat_samples: usize,
    /// Workload 8: how long to send 1 KiB payloads.
    pub throttled_run: Duration,
    /// Through the host: (payload size, warm-up round trips, measured
    /// round trips), the same on every path (library, pages, sockets).
    pub host_rtt: [(usize, usize, usize); 2],
    /// Workload 10: bytes of the transfer, sent in chunks of
    /// [`crate::workloads::BULK_CHUNK`] bytes.
    pub bulk_bytes: usize,
    /// Workload 10: the small payloads' send interval during the transfer.
    pub bulk_small_interval: Duration,
    /// Workload 10: small payloads per path on the idle channels.
    pub bulk_idle_samples: usize,
}

impl Params {
    /// `--full`: the figures the docs report.
    pub fn full() -> Params {
        Params {
            quick: false,
            lat32: (200, 2000),
            lat128k: (20, 200),
            throughput_run: Duration::from_secs(5),
            throughput_drain: Duration::from_secs(5),
            fanout_receivers: vec![2, 8, 32],
            fanout_samples: 200,
            join_samples: 50,
            memory: (100, 100, 1000),
            wire_budget: Duration::from_secs(2),
            callgrind: [(32, 1_000, 11_000), (128_000, 5, 25)],
            throttled_lat_samples: 3,
            throttled_run: Duration::from_secs(10),
            host_rtt: [(32, 50, 500), (crate::LARGE, 10, 100)],
            bulk_bytes: 10_000_000,
            bulk_small_interval: Duration::from_millis(5),
            bulk_idle_samples: 100,
        }
    }

    /// `--quick`: a few seconds per backend; CI checks that it runs, not
    /// the figures.
    pub fn quick() -> Params {
        Params {
            quick: true,
            lat32: (20, 100),
            lat128k: (2, 10),
            throughput_run: Duration::from_secs(1),
            throughput_drain: Duration::from_secs(2),
            fanout_receivers: vec![2, 8, 32],
            fanout_samples: 10,
            join_samples: 5,
            memory: (20, 20, 200),
            wire_budget: Duration::from_millis(200),
            callgrind: [(32, 100, 1_100), (128_000, 2, 6)],
            throttled_lat_samples: 1,
            throttled_run: Duration::from_secs(2),
            host_rtt: [(32, 5, 20), (crate::LARGE, 2, 20)],
            bulk_bytes: 1_000_000,
            bulk_small_interval: Duration::from_millis(5),
            bulk_idle_samples: 20,
        }
    }
}

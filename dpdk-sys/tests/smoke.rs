//! EAL init without hugepages, a net_ring pair of vdevs created at run time,
//! one rx/tx queue each, a burst sent on one port and received on the other.
//! Runs only with the `dpdk` feature: `cargo test -p dpdk-sys --features dpdk`.
#![cfg(feature = "dpdk")]
#![allow(unsafe_code)]

use std::ffi::{c_char, CString};
use std::ptr;

use dpdk_sys::*;

fn eal_init() {
    let args = [
        "smoke",
        "--no-huge",
        "--no-shconf",
        "-m",
        "128",
        "--no-pci",
        "--log-level=lib.eal:error",
        "--vdev=net_null0",
    ];
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(*a).expect("cstring"))
        .collect();
    let mut argv: Vec<*mut c_char> = cargs.iter().map(|a| a.as_ptr() as *mut c_char).collect();
    // SAFETY: argv holds valid NUL-terminated strings that outlive the call
    // (EAL keeps pointers into them, and cargs is leaked below).
    let rc = unsafe { rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
    assert!(rc >= 0, "rte_eal_init: {:?}", last_error());
    std::mem::forget(cargs);
    std::mem::forget(argv);
}

fn port_id(name: &str) -> u16 {
    let c = CString::new(name).expect("cstring");
    let mut id = 0u16;
    // SAFETY: c is a valid string, id a valid out pointer.
    let rc = unsafe { rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    assert_eq!(rc, 0, "port {name} not found");
    id
}

fn setup(port: u16, pool: *mut rte_mempool) {
    // SAFETY: plain ethdev calls on a probed port with valid (zeroed) configs.
    unsafe {
        let conf: rte_eth_conf = std::mem::zeroed();
        assert_eq!(rte_eth_dev_configure(port, 1, 1, &conf), 0);
        let socket = rte_eth_dev_socket_id(port) as u32;
        assert_eq!(
            rte_eth_rx_queue_setup(port, 0, 256, socket, ptr::null(), pool),
            0
        );
        assert_eq!(rte_eth_tx_queue_setup(port, 0, 256, socket, ptr::null()), 0);
        assert_eq!(rte_eth_dev_start(port), 0);
    }
}

#[test]
fn smoke() {
    eal_init();
    // SAFETY: the shim's offsets are plain constants.
    unsafe {
        assert_eq!(
            dpvs_mbuf_off_data_len(),
            std::mem::offset_of!(rte_mbuf, data_len)
        );
        assert_eq!(
            dpvs_mbuf_off_data_off(),
            std::mem::offset_of!(rte_mbuf, data_off)
        );
        assert_eq!(
            dpvs_mbuf_off_pkt_len(),
            std::mem::offset_of!(rte_mbuf, pkt_len)
        );
    }
    let name = CString::new("smoke_pool").expect("cstring");
    // SAFETY: valid name; the pool lives for the process.
    let pool = unsafe {
        rte_pktmbuf_pool_create(
            name.as_ptr(),
            4095,
            256,
            0,
            RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            rte_socket_id() as i32,
        )
    };
    assert!(!pool.is_null(), "pool: {:?}", last_error());

    // net_null from the command line: tx always succeeds, rx returns bursts.
    let null = port_id("net_null0");
    setup(null, pool);

    // A pair of ports over two rings: what one sends the other receives.
    let ring = |n: &str| {
        let c = CString::new(n).expect("cstring");
        // SAFETY: valid name; the ring lives for the process.
        let r = unsafe {
            rte_ring_create(
                c.as_ptr(),
                1024,
                rte_socket_id() as i32,
                RING_F_SP_ENQ | RING_F_SC_DEQ,
            )
        };
        assert!(!r.is_null(), "ring {n}: {:?}", last_error());
        r
    };
    let (mut r1, mut r2) = (ring("smoke_r1"), ring("smoke_r2"));
    let pair = |n: &str, rx: &mut *mut rte_ring, tx: &mut *mut rte_ring| {
        let c = CString::new(n).expect("cstring");
        // SAFETY: valid name and one valid ring pointer each way.
        let id = unsafe { rte_eth_from_rings(c.as_ptr(), rx, 1, tx, 1, rte_socket_id()) };
        assert!(id >= 0, "from_rings {n}: {:?}", last_error());
        id as u16
    };
    let a = pair("smoke_a", &mut r1, &mut r2);
    let b = pair("smoke_b", &mut r2, &mut r1);
    setup(a, pool);
    setup(b, pool);
    // A net_ring vdev created at run time (a loopback: rx gets its own tx).
    let (cn, ca) = (
        CString::new("net_ring_lo").expect("cstring"),
        CString::new("").expect("cstring"),
    );
    // SAFETY: valid strings.
    let rc = unsafe { rte_vdev_init(cn.as_ptr(), ca.as_ptr()) };
    assert_eq!(rc, 0, "vdev net_ring_lo: {:?}", last_error());
    let lo = port_id("net_ring_lo");
    setup(lo, pool);

    let mut mbufs = [ptr::null_mut::<rte_mbuf>(); 8];
    // SAFETY: pool is valid; mbufs has room for 8 pointers; each mbuf is
    // written within its tailroom before being handed to tx.
    unsafe {
        assert_eq!(dpvs_pktmbuf_alloc_bulk(pool, mbufs.as_mut_ptr(), 8), 0);
        for (i, &m) in mbufs.iter().enumerate() {
            let p = mbuf_set_len(m, 64).expect("room");
            ptr::write_bytes(p, i as u8, 64);
            assert_eq!(dpvs_pktmbuf_data_len(m), 64);
            assert_eq!(dpvs_pktmbuf_mtod(m).cast::<u8>(), p);
        }
        let sent = dpvs_tx_burst(a, 0, mbufs.as_mut_ptr(), 8);
        assert_eq!(sent, 8);
        let mut rx = [ptr::null_mut::<rte_mbuf>(); 32];
        let got = dpvs_rx_burst(b, 0, rx.as_mut_ptr(), 32);
        assert_eq!(got, 8);
        for (i, &m) in rx[..8].iter().enumerate() {
            assert_eq!(mbuf_data_len(m), 64);
            assert_eq!(*mbuf_data(m).add(10), i as u8);
        }
        // Loop the same mbufs through the loopback port.
        assert_eq!(dpvs_tx_burst(lo, 0, rx.as_mut_ptr(), 8), 8);
        assert_eq!(dpvs_rx_burst(lo, 0, rx.as_mut_ptr(), 32), 8);
        dpvs_pktmbuf_free_bulk(rx.as_mut_ptr(), 8);

        // net_null: a receive returns a full burst of fresh mbufs.
        let got = dpvs_rx_burst(null, 0, rx.as_mut_ptr(), 32);
        assert!(got > 0);
        let sent = dpvs_tx_burst(null, 0, rx.as_mut_ptr(), got);
        assert_eq!(sent, got);
        let mut mac: rte_ether_addr = std::mem::zeroed();
        assert_eq!(rte_eth_macaddr_get(a, &mut mac), 0);
    }
    println!("dpdk {DPDK_VERSION}: ok");
}

//! Builds the bindings only with the `dpdk` feature; without it the crate is
//! empty and nothing needs to be installed.
//!
//! With the feature: reads the raw `pkg-config --cflags --libs libdpdk`
//! output (it carries `-include rte_config.h -march=...`, which the
//! `pkg-config` crate would drop), compiles the C shim with those flags, runs
//! bindgen on `shim/dpvs_shim.h` with an allowlist and links libdpdk shared
//! (EAL then dlopens every PMD from its plugin directory).

#[cfg(feature = "dpdk")]
const INSTALL_HINT: &str = "dpdk-sys needs DPDK 22.11 development files, libclang and pkg-config: \
     apt-get install dpdk-dev libdpdk-dev libclang-dev pkg-config \
     (or build without the `dpdk` feature)";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_DPDK");
    if std::env::var_os("CARGO_FEATURE_DPDK").is_some() {
        #[cfg(feature = "dpdk")]
        real::build();
    }
}

#[cfg(feature = "dpdk")]
mod real {
    use super::INSTALL_HINT;
    use std::path::PathBuf;
    use std::process::Command;

    fn pkg_config(arg: &str) -> Vec<String> {
        let out = match Command::new("pkg-config").args([arg, "libdpdk"]).output() {
            Ok(o) => o,
            Err(e) => panic!("\n\nrunning pkg-config failed ({e}).\n{INSTALL_HINT}\n\n"),
        };
        if !out.status.success() {
            panic!(
                "\n\n`pkg-config {arg} libdpdk` failed: {}\n{INSTALL_HINT}\n\n",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    pub fn build() {
        println!("cargo:rerun-if-changed=shim/dpvs_shim.h");
        println!("cargo:rerun-if-changed=shim/dpvs_shim.c");
        println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
        println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
        let version = pkg_config("--modversion");
        let cflags = pkg_config("--cflags");
        let libs = pkg_config("--libs");
        if let Some(v) = version.first() {
            println!("cargo:rustc-env=DPDK_SYS_DPDK_VERSION={v}");
            println!("cargo:version={v}");
        }

        // `-include rte_config.h` comes as two tokens: keep them together.
        let mut cc = cc::Build::new();
        cc.file("shim/dpvs_shim.c").include("shim").warnings(false);
        let mut it = cflags.iter();
        while let Some(f) = it.next() {
            if f == "-include" {
                if let Some(h) = it.next() {
                    cc.flag("-include").flag(h);
                }
            } else {
                cc.flag(f);
            }
        }
        cc.flag("-O3");
        cc.compile("dpvs_shim");

        // Link shared: every -L and -l, in order, after the shim.
        for l in &libs {
            if let Some(dir) = l.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={dir}");
            } else if let Some(lib) = l.strip_prefix("-l") {
                println!("cargo:rustc-link-lib=dylib={lib}");
            }
        }
        // rte_vdev_init lives in the vdev bus driver, which pkg-config's
        // (non-static) --libs leaves out.
        // The same for rte_eth_from_rings (a pair of ports over two rings).
        println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");
        println!("cargo:rustc-link-lib=dylib=rte_net_ring");

        let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
        let bindings = bindgen::Builder::default()
            .header("shim/dpvs_shim.h")
            .clang_args(cflags.iter().filter(|f| !f.starts_with("-march")))
            .clang_arg("-Ishim")
            .generate_comments(false)
            .derive_default(true)
            .derive_debug(true)
            .impl_debug(false)
            .layout_tests(true)
            .allowlist_function(
                "rte_eal_.*|rte_eth_.*|rte_pktmbuf_.*|rte_mempool_.*|rte_lcore_.*|rte_vdev_.*|\
                 rte_dev_.*|rte_thread_.*|rte_strerror|rte_socket_id|rte_ring_create|rte_ring_free|rte_eth_from_ring.*|\
                 rte_log_.*|rte_exit|rte_get_tsc_hz|rte_delay_us_block|dpvs_.*",
            )
            .allowlist_type("rte_mbuf|rte_mempool|rte_eth_.*|rte_ether_addr")
            .allowlist_var(
                "RTE_ETH_.*|RTE_MBUF_.*|RTE_PKTMBUF_.*|RTE_MAX_ETHPORTS|RTE_MAX_LCORE|\
                 RTE_ETHER_.*|SOCKET_ID_ANY|LCORE_ID_ANY|RTE_MEMPOOL_.*|RING_F_.*",
            )
            .blocklist_type("max_align_t")
            .opaque_type("rte_mempool")
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
            .generate()
            .unwrap_or_else(|e| panic!("\n\nbindgen on libdpdk failed: {e}\n{INSTALL_HINT}\n\n"));
        bindings
            .write_to_file(out.join("bindings.rs"))
            .expect("write bindings.rs");
    }
}

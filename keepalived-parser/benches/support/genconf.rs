//! The benchmark configuration: `vs` virtual servers with `rs` real servers
//! each, every real server with a TCP_CHECK (issue 3 item 8). Shared by
//! `benches/parse.rs` and `examples/genconf.rs`.

use std::fmt::Write as _;

/// The config text; addresses are unique (VS in 10.0.0.0/8, RS in 172.16.0.0/12).
pub fn generate(vs: u32, rs: u32) -> String {
    let mut out = String::with_capacity(vs as usize * (200 + rs as usize * 150));
    out.push_str("global_defs {\n    router_id BENCH\n}\n\n");
    for v in 0..vs {
        let _ = write!(
            out,
            "virtual_server 10.{}.{}.{} 80 {{\n    delay_loop 6\n    lb_algo wrr\n    \
             lb_kind NAT\n    persistence_timeout 50\n    protocol TCP\n\n",
            (v >> 16) & 0xff,
            (v >> 8) & 0xff,
            v & 0xff
        );
        for r in 0..rs {
            let n = v * rs + r;
            let _ = write!(
                out,
                "    real_server 172.{}.{}.{} 8080 {{\n        weight {}\n        \
                 TCP_CHECK {{\n            connect_port 8080\n            \
                 connect_timeout 3\n            retry 3\n            delay_before_retry 3\n        \
                 }}\n    }}\n",
                16 + ((n >> 16) & 0x0f),
                (n >> 8) & 0xff,
                n & 0xff,
                1 + r % 5
            );
        }
        out.push_str("}\n\n");
    }
    out
}

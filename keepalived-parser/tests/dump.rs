//! `dump`: the canonical text loads back into an equal model (locations aside).

mod common;
use common::{diags, load};
use keepalived_parser::{dump, load_file, load_str, without_locations, LoadOptions, Model};
use std::path::Path;

fn reload(m: &Model, origin: &str) -> Model {
    let text = dump(m);
    let l = load_str(
        &text,
        Path::new("/nonexistent/dump.conf"),
        &LoadOptions {
            config_id: Some("corpus".into()),
        },
    );
    let again = without_locations(&l.model);
    assert_eq!(
        again,
        without_locations(m),
        "{origin}: dump does not load back into the same model:\n{text}\n{:#?}",
        diags(&l)
    );
    again
}

#[test]
fn every_corpus_file_and_sample_round_trips() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"));
    let mut files = Vec::new();
    for sub in ["keepalived", "dpvs"] {
        if let Ok(entries) = std::fs::read_dir(root.join(sub)) {
            files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    if files.is_empty() {
        println!("SKIP: ../shared/corpus not found");
    }
    let sample = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/keepalived.conf"
    ));
    if sample.is_file() {
        files.push(sample.to_path_buf());
    }
    files.sort();
    for f in &files {
        let l = load_file(
            f,
            &LoadOptions {
                config_id: Some("corpus".into()),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        reload(&l.model, &f.display().to_string());
    }
}

#[test]
fn rich_config_round_trips_and_dump_is_a_fixed_point() {
    let l = load(
        "global_defs {\n router_id \"my router\"\n vrrp_garp_interval 0.001\n script_user nobody\n}\n\
         track_file tf {\n file /run/x\n weight -3 reverse\n init_file 2\n}\n\
         vrrp_script chk {\n script \"/bin/check 'a b' c\"\n interval 0.5\n weight 4 reverse\n}\n\
         static_ipaddress {\n 10.9.0.1/24 dev eth3 scope host\n}\n\
         static_routes {\n 10.8.0.0/16 via 10.9.0.254 dev eth3 proto static\n}\n\
         vrrp_instance V {\n state MASTER\n interface eth0\n virtual_router_id 9\n priority 150\n version 3\n advert_int 0.25\n\
         unicast_src_ip 10.0.0.9\n unicast_peer {\n  10.0.0.10 max_ttl 3\n }\n\
         virtual_ipaddress {\n  10.0.0.1/24 dev eth1 brd + label eth1:v home\n }\n\
         virtual_routes {\n  10.1.0.0/16 via 10.0.0.254 or 10.0.0.253\n  10.2.0.0/16 dev eth0 nexthop via 10.0.0.1 weight 2 nexthop via 10.0.0.2\n }\n\
         virtual_rules {\n  from 10.0.0.0/24 table 7 fwmark 3\n }\n\
         track_script {\n  chk weight -9\n }\n track_file {\n  tf\n }\n\
         notify_master \"/bin/n master\" root\n notify \"/bin/n\"\n}\n\
         vrrp_instance W {\n virtual_router_id 10\n nopreempt\n preempt_delay 5\n virtual_ipaddress {\n  10.0.1.1\n }\n}\n\
         vrrp_sync_group G {\n group {\n  V\n  W\n }\n notify_fault /bin/f\n}\n\
         virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind DR\n alpha\n quorum 2\n hysteresis 1\n\
          sorry_server 10.0.0.99 80\n quorum_up \"/bin/up x\"\n\
          real_server 10.0.1.1 80 {\n  weight 3\n  HTTP_GET {\n   url {\n    path /h\n    status_code 200 301-302\n   }\n  }\n  UDP_CHECK {\n   payload 0a0b\n   require_reply 01XX\n  }\n  FILE_CHECK {\n   track_file tf\n   weight 2 reverse\n  }\n }\n\
          real_server 10.0.1.2 80 {\n  MISC_CHECK {\n   misc_path \"/bin/m x\"\n   misc_timeout 7\n   misc_dynamic\n  }\n  DNS_CHECK {\n   type A\n   name example.org\n  }\n }\n}\n\
         ospf_announcer {\n router_id 10.99.0.1\n interface eth0 {\n  authentication md5 1 k\n }\n}\n",
    );
    let m = &l.model;
    assert_eq!(m.vrrp_instances.len(), 2);
    assert_eq!(m.virtual_servers[0].real_servers.len(), 2);
    let again = reload(m, "inline");
    // Dumping the reloaded model gives the same text.
    assert_eq!(dump(&again), dump(&without_locations(m)));
}

/* The headers bindgen reads and the C shim's exported wrappers.
 * rte_config.h comes first (pkg-config also force-includes it). */
#ifndef DPVS_SHIM_H
#define DPVS_SHIM_H

#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_dev.h>
#include <rte_bus_vdev.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>

/* DPDK's fast path is static inline: these wrappers export it.
 * One call per burst; per-packet field access is done in Rust. */
uint16_t dpvs_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t dpvs_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *dpvs_pktmbuf_alloc(struct rte_mempool *mp);
int dpvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void dpvs_pktmbuf_free(struct rte_mbuf *m);
void dpvs_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n);
void *dpvs_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t dpvs_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t dpvs_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t dpvs_pktmbuf_tailroom(const struct rte_mbuf *m);
char *dpvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
void dpvs_pktmbuf_reset(struct rte_mbuf *m);
/* Software redirect rings between workers (multi-producer enqueue). */
unsigned dpvs_ring_enqueue_burst(struct rte_ring *r, struct rte_mbuf **objs, unsigned n);
unsigned dpvs_ring_dequeue_burst(struct rte_ring *r, struct rte_mbuf **objs, unsigned n);
unsigned dpvs_ring_count(const struct rte_ring *r);
/* rte_errno is a per-lcore (thread-local) macro. */
int dpvs_errno(void);
unsigned dpvs_lcore_id(void);
unsigned dpvs_mempool_in_use(const struct rte_mempool *mp);
/* Offsets of the mbuf fields the Rust fast path touches (checked in tests). */
size_t dpvs_mbuf_off_buf_addr(void);
size_t dpvs_mbuf_off_data_off(void);
size_t dpvs_mbuf_off_pkt_len(void);
size_t dpvs_mbuf_off_data_len(void);

#endif

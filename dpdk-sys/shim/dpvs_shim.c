#include <stddef.h>
#include "dpvs_shim.h"

uint16_t dpvs_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t dpvs_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *dpvs_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int dpvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

void dpvs_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

void dpvs_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n)
{
	rte_pktmbuf_free_bulk(mbufs, n);
}

void *dpvs_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t dpvs_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t dpvs_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

uint16_t dpvs_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

char *dpvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

void dpvs_pktmbuf_reset(struct rte_mbuf *m)
{
	rte_pktmbuf_reset(m);
}

unsigned dpvs_ring_enqueue_burst(struct rte_ring *r, struct rte_mbuf **objs, unsigned n)
{
	return rte_ring_enqueue_burst(r, (void *const *)objs, n, NULL);
}

unsigned dpvs_ring_dequeue_burst(struct rte_ring *r, struct rte_mbuf **objs, unsigned n)
{
	return rte_ring_dequeue_burst(r, (void **)objs, n, NULL);
}

unsigned dpvs_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

int dpvs_errno(void)
{
	return rte_errno;
}

unsigned dpvs_lcore_id(void)
{
	return rte_lcore_id();
}

unsigned dpvs_mempool_in_use(const struct rte_mempool *mp)
{
	return rte_mempool_in_use_count(mp);
}

size_t dpvs_mbuf_off_buf_addr(void) { return offsetof(struct rte_mbuf, buf_addr); }
size_t dpvs_mbuf_off_data_off(void) { return offsetof(struct rte_mbuf, data_off); }
size_t dpvs_mbuf_off_pkt_len(void) { return offsetof(struct rte_mbuf, pkt_len); }
size_t dpvs_mbuf_off_data_len(void) { return offsetof(struct rte_mbuf, data_len); }

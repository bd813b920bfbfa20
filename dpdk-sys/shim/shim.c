#include "shim.h"

uint16_t sluice_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                             uint16_t nb_pkts) {
    return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t sluice_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                             uint16_t nb_pkts) {
    return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *sluice_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int sluice_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count) {
    return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void sluice_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

char *sluice_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }

char *sluice_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }

char *sluice_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }

int sluice_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }

int sluice_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail) { return rte_pktmbuf_chain(head, tail); }

void sluice_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }

uint16_t sluice_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }

uint16_t sluice_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }

int sluice_errno(void) { return rte_errno; }

unsigned sluice_lcore_id(void) { return rte_lcore_id(); }

uint64_t sluice_rdtsc(void) { return rte_rdtsc(); }

uint64_t sluice_tsc_hz(void) { return rte_get_tsc_hz(); }

unsigned sluice_ring_sp_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n) {
    return rte_ring_sp_enqueue_burst(r, objs, n, NULL);
}

unsigned sluice_ring_sc_dequeue_burst(struct rte_ring *r, void **objs, unsigned n) {
    return rte_ring_sc_dequeue_burst(r, objs, n, NULL);
}

unsigned sluice_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }

const char *sluice_version(void) { return rte_version(); }

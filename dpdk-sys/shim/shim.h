/* Exports of DPDK's static-inline and thread-local functions, which bindgen cannot bind.
 * Each is a one-line forwarder; LTO across the FFI boundary is not available, so the burst
 * functions are the only ones on the per-packet path and they amortise the call over a burst. */
#ifndef SLUICE_DPDK_SHIM_H
#define SLUICE_DPDK_SHIM_H

#include <rte_config.h>
#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_version.h>
#include <rte_bus_vdev.h>
#include <rte_eth_ring.h>

uint16_t sluice_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                             uint16_t nb_pkts);
uint16_t sluice_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                             uint16_t nb_pkts);
struct rte_mbuf *sluice_pktmbuf_alloc(struct rte_mempool *mp);
int sluice_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void sluice_pktmbuf_free(struct rte_mbuf *m);
char *sluice_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *sluice_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *sluice_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int sluice_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
int sluice_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail);
void sluice_pktmbuf_reset(struct rte_mbuf *m);
uint16_t sluice_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t sluice_pktmbuf_tailroom(const struct rte_mbuf *m);
int sluice_errno(void);
unsigned sluice_lcore_id(void);
uint64_t sluice_rdtsc(void);
uint64_t sluice_tsc_hz(void);
unsigned sluice_ring_sp_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned sluice_ring_sc_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned sluice_ring_count(const struct rte_ring *r);
const char *sluice_version(void);

#endif

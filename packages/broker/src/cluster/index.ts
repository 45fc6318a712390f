// The cluster's seams (contract.ts) and the transport between brokers: the peer links over TCP
// and their codecs, and the host that drives every Raft group of a broker.
export * from './contract.js';
export { type GroupHostStats, RaftGroupHost, type RaftGroupHostOptions } from './group-host.js';
export { MemoryRaftGroup } from './memory-raft-group.js';
export { PEER_PREAMBLE, PEER_PROTOCOL_VERSION } from './peer-frame.js';
export {
  isPeerPreamble,
  PEER_LINK_LIMITS_DEFAULT,
  type PeerAddress,
  type PeerLinkLimits,
  type PeerLinkStats,
  PeerLinks,
  type PeerLinksOptions,
} from './peer-links.js';
export {
  decodeRaftBatch,
  encodedMessageBytes,
  encodeRaftBatch,
  type GroupMessage,
} from './raft-batch-codec.js';

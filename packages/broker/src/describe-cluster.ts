// The DescribeCluster answer of a broker that is a cluster of one (no controller quorum wired
// yet): it is the only broker, live, unfenced, the controller and its only voter, and holds and
// leads every partition. Pure; the cluster-wide answer from the controller's applied metadata
// replaces it when the broker joins a replicated cluster.
import type { DescribeClusterResponse } from '@streambus/protocol';

export interface SingleNodeView {
  readonly clusterId: string;
  readonly nodeId: number;
  readonly host: string;
  readonly port: number;
  /** Partitions this broker holds (all of them lead). */
  readonly partitions: number;
}

export function describeClusterOfOne(self: SingleNodeView): DescribeClusterResponse {
  return {
    errorCode: 0,
    clusterId: self.clusterId,
    controllerId: self.nodeId,
    brokers: [
      {
        nodeId: self.nodeId,
        host: self.host,
        port: self.port,
        rack: null,
        live: true,
        fenced: false,
        isVoter: true,
        replicaCount: self.partitions,
        leaderCount: self.partitions,
      },
    ],
  };
}

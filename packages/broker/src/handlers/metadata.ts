// ApiVersions, Metadata and DescribeCluster: what this broker speaks, and the topics, partitions and brokers a
// client routes by, from the controller's applied state (cluster-admin.ts).
import {
  API_VERSION_RANGES,
  type DescribeClusterResponse,
  type MetadataRequest,
  type MetadataResponse,
} from '@streambus/protocol';
import { BROKER_VERSION } from '../version.js';
import { clusterMetadata } from './cluster-admin.js';
import type { BrokerContext } from './context.js';

export function apiVersions(b: BrokerContext) {
  return {
    errorCode: 0,
    apis: Object.entries(API_VERSION_RANGES).map(([k, r]) => ({
      apiKey: Number(k),
      minVersion: r.min,
      maxVersion: r.max,
    })),
    brokerVersion: BROKER_VERSION,
    nodeId: b.config.nodeId,
  };
}

export function metadata(b: BrokerContext, req: MetadataRequest): Promise<MetadataResponse> {
  return clusterMetadata(b, b.cluster, req);
}

export function describeCluster(b: BrokerContext): DescribeClusterResponse {
  return b.cluster.describeCluster();
}

// The conditions of `/ready` on the cluster path (issue 12), pure: the broker is ready once it
// is registered (and unfenced) with the controller, has caught up with the metadata log (a
// controller leader was known and everything committed that this broker knew of was applied, at
// least once since it started),
// and holds open every replica the applied state assigns to it, each caught up or catching up
// (leading, following, or in an election). `missing` names the conditions not met, in a fixed
// order, so a probe's JSON says why it is 503. A controlled shutdown makes it unready at once.
// Offline replicas (a storage failure) are counted but do not make the broker unready: every
// other partition serves (the broker-wide rule of http-server.ts).
import { type MetadataState, partitionsOfBroker } from '../controller/metadata-state.js';
import type { ReplicaRole } from '../replication/partition-replica.js';

export interface ClusterReadinessInput {
  readonly self: number;
  readonly state: MetadataState;
  readonly registered: boolean;
  readonly metadataCaughtUp: boolean;
  /** Why this broker's metadata log is offline (a disk error; it reopens by itself), or null. */
  readonly metadataLogOffline?: string | null;
  /** Replicas the applied state assigns to this broker that are open here. */
  readonly assignedOpen: number;
  readonly held: ReadonlyArray<{ readonly role: ReplicaRole }>;
  readonly draining: boolean;
}

export type ReadinessCondition =
  | 'shutting-down'
  | 'registered'
  | 'metadata-caught-up'
  | 'metadata-log-offline'
  | 'replicas-open';

export interface ClusterReadiness {
  readonly ready: boolean;
  /** The conditions not met (empty when ready). */
  readonly missing: ReadinessCondition[];
  readonly registered: boolean;
  readonly metadataCaughtUp: boolean;
  /** Why the metadata log is offline, or null (condition `metadata-log-offline`). */
  readonly metadataLogOffline: string | null;
  /** Replicas the applied state assigns to this broker, and how many of them are open here. */
  readonly replicasAssigned: number;
  readonly replicasOpen: number;
  readonly replicaRoles: Readonly<Record<ReplicaRole, number>>;
}

export function clusterReadiness(i: ClusterReadinessInput): ClusterReadiness {
  const roles: Record<ReplicaRole, number> = { leader: 0, follower: 0, candidate: 0, offline: 0 };
  for (const h of i.held) roles[h.role]++;
  const assigned = partitionsOfBroker(i.state, i.self).length;
  const missing: ReadinessCondition[] = [];
  if (i.draining) missing.push('shutting-down');
  if (!i.registered) missing.push('registered');
  if (!i.metadataCaughtUp) missing.push('metadata-caught-up');
  if (i.metadataLogOffline) missing.push('metadata-log-offline');
  if (i.assignedOpen < assigned) missing.push('replicas-open');
  return {
    ready: missing.length === 0,
    missing,
    registered: i.registered,
    metadataCaughtUp: i.metadataCaughtUp,
    metadataLogOffline: i.metadataLogOffline ?? null,
    replicasAssigned: assigned,
    replicasOpen: i.assignedOpen,
    replicaRoles: roles,
  };
}

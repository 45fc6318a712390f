// The error codes of the group state machine that the one table (packages/protocol/src/errors.ts)
// does not hold yet. Kafka's numbers where Kafka has the condition (Errors.java), StreamBus-only
// ones from this slice's range 1190-1199. The rows have the table's shape so that moving them
// into errors.ts is a paste; group-errors.test.ts checks that none collides with a table row.
// Codes the table already has (ILLEGAL_GENERATION 22, UNKNOWN_MEMBER_ID 25, ...) come from it.
import { ErrorCode, type ErrorInfo } from '@streambus/protocol';

export const GroupErrorCode = {
  ...ErrorCode,
  OFFSET_METADATA_TOO_LARGE: 12,
  NON_EMPTY_GROUP: 68,
  GROUP_ID_NOT_FOUND: 69,
  MEMBER_ID_REQUIRED: 79,
  GROUP_MAX_SIZE_REACHED: 81,
  FENCED_INSTANCE_ID: 82,
  // 1190-1199: the consumer-group coordinator (packages/broker/src/groups).
  GROUP_METADATA_TOO_LARGE: 1190,
  GROUPS_LIMIT_REACHED: 1191,
  GROUP_OFFSETS_LIMIT_REACHED: 1192,
} as const;

/** The rows to add to the one table, in its shape (code, name, retriable, message). */
export const GROUP_ERROR_ROWS: readonly ErrorInfo[] = [
  row(12, 'OFFSET_METADATA_TOO_LARGE', false, 'committed offset metadata is too large'),
  row(68, 'NON_EMPTY_GROUP', false, 'the group has members'),
  row(69, 'GROUP_ID_NOT_FOUND', false, 'no such group'),
  row(79, 'MEMBER_ID_REQUIRED', false, 'rejoin with the member id given in this response'),
  row(81, 'GROUP_MAX_SIZE_REACHED', false, 'the group has its maximum number of members'),
  row(82, 'FENCED_INSTANCE_ID', false, 'a newer member with this group instance id joined'),
  row(
    1190,
    'GROUP_METADATA_TOO_LARGE',
    false,
    'protocol metadata or an assignment is larger than the coordinator accepts',
  ),
  row(1191, 'GROUPS_LIMIT_REACHED', true, 'the coordinator holds its maximum number of groups'),
  row(
    1192,
    'GROUP_OFFSETS_LIMIT_REACHED',
    false,
    'the group holds its maximum number of committed offsets',
  ),
];

function row(code: number, name: string, retriable: boolean, message: string): ErrorInfo {
  return { code, name, retriable, message };
}

const NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(GroupErrorCode).map(([name, code]) => [code as number, name]),
);

/** The name of a code the state machine answers with (`NONE`, `ILLEGAL_GENERATION`, ...). */
export function groupErrorName(code: number): string {
  return NAMES.get(code) ?? `UNKNOWN_ERROR_CODE_${code}`;
}

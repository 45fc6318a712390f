// The error codes the group state machine answers with: all from the one table
// (packages/protocol/src/errors.ts), Kafka's numbers where Kafka has the condition, StreamBus-only
// ones in 1190-1199.
import { ErrorCode } from '@streambus/protocol';

export const GroupErrorCode = ErrorCode;

const NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(GroupErrorCode).map(([name, code]) => [code as number, name]),
);

/** The name of a code the state machine answers with (`NONE`, `ILLEGAL_GENERATION`, ...). */
export function groupErrorName(code: number): string {
  return NAMES.get(code) ?? `UNKNOWN_ERROR_CODE_${code}`;
}

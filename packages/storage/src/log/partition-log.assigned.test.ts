// AppendOptions.assignedOffsets: a Raft follower appends its leader's bytes unchanged.
import { setBaseOffset, setPartitionLeaderEpoch } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { MemoryFileSystem } from '../memory-fs.js';
import { PartitionLog } from './partition-log.js';
import { makeBatch, TEST_CONFIG } from './test-helpers.js';

function stamped(tag: number, count: number, base: number, epoch: number): Buffer {
  const b = makeBatch(tag, count);
  setBaseOffset(b, 0, base);
  setPartitionLeaderEpoch(b, 0, epoch);
  return b;
}

describe('PartitionLog.append with assignedOffsets', () => {
  it('appends the bytes unchanged and refuses a gap, an overlap and a bad CRC', async () => {
    const fs = new MemoryFileSystem();
    const log = await PartitionLog.open(fs, '/p', TEST_CONFIG);
    const a = stamped(1, 3, 0, 7);
    const before = Buffer.from(a);
    expect(await log.append(a, { assignedOffsets: true })).toMatchObject({
      baseOffset: 0,
      lastOffset: 2,
    });
    const read = await log.read(0, 1 << 20);
    expect(read.data.equals(before)).toBe(true); // epoch 7 kept, nothing patched
    const gap = await log.append(stamped(2, 1, 5, 7), { assignedOffsets: true }).catch((e) => e);
    expect(gap.errorName).toBe('INVALID_RECORD');
    const overlap = await log
      .append(stamped(3, 1, 2, 7), { assignedOffsets: true })
      .catch((e) => e);
    expect(overlap.errorName).toBe('INVALID_RECORD');
    const bad = stamped(4, 1, 3, 7);
    bad.writeUInt8(bad.readUInt8(bad.length - 1) ^ 1, bad.length - 1);
    const crc = await log.append(bad, { assignedOffsets: true }).catch((e) => e);
    expect(crc.errorName).toBe('CORRUPT_MESSAGE');
    expect(log.logEndOffset).toBe(3);
    // crcVerified: the caller vouches for the CRC, so it is not recomputed (here: not caught).
    const vouched = stamped(7, 1, 3, 7);
    vouched.writeUInt8(vouched.readUInt8(vouched.length - 1) ^ 1, vouched.length - 1);
    const append = log.append(vouched, { assignedOffsets: true, crcVerified: true });
    expect((await append).baseOffset).toBe(3);
    await log.truncateTo(3);
    expect(await log.append(stamped(5, 2, 3, 8), { assignedOffsets: true })).toMatchObject({
      baseOffset: 3,
      lastOffset: 4,
    });
    // The default still assigns offsets.
    expect((await log.append(makeBatch(6, 1))).baseOffset).toBe(5);
    await log.close();
  });
});

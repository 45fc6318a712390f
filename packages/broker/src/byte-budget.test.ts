import { describe, expect, it } from 'vitest';
import { ByteBudget, brokerBudgets } from './byte-budget.js';

describe('ByteBudget', () => {
  it('reserves within the capacity, then grants waiters in FIFO order as bytes free', () => {
    const b = new ByteBudget('test', 100);
    expect(b.tryReserve(60)).toBe(true);
    expect(b.tryReserve(50)).toBe(false);
    const granted: string[] = [];
    b.wait(50, () => granted.push('big'));
    b.wait(10, () => granted.push('small'));
    // A small reservation may not overtake the waiters (no starvation of large frames).
    expect(b.tryReserve(10)).toBe(false);
    expect(granted).toEqual([]);
    b.release(20); // used 40: both fit now, in order
    expect(granted).toEqual(['big', 'small']);
    expect(b.used).toBe(100);
    expect(b.waiting).toBe(0);
  });

  it('forgets a cancelled waiter and lets the next one through', () => {
    const b = new ByteBudget('test', 100);
    expect(b.tryReserve(100)).toBe(true);
    const granted: string[] = [];
    const cancel = b.wait(80, () => granted.push('a'));
    b.wait(30, () => granted.push('b'));
    b.release(40);
    expect(granted).toEqual([]); // 'a' (80) is first and does not fit
    cancel();
    expect(granted).toEqual(['b']);
    expect(b.used).toBe(90);
  });

  it('counts charges past the capacity and refuses reservations until they are gone', () => {
    const b = new ByteBudget('test', 100);
    b.charge(150);
    expect(b.tryReserve(1)).toBe(false);
    b.charge(-150);
    expect(b.used).toBe(0);
    expect(() => b.release(1)).toThrow();
  });

  it('holds at least one whole frame and one connection share', () => {
    const budgets = brokerBudgets({
      frameBytesMax: 1000,
      brokerInboundBytesMax: 10,
      outboundBytesMax: 500,
      brokerOutboundBytesMax: 20,
    });
    expect(budgets.inbound.capacityBytes).toBe(1000);
    expect(budgets.outbound.capacityBytes).toBe(500);
  });
});

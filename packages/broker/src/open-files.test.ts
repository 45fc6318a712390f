import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { processOpenFilesLimit, storageOpenFilesMax } from './open-files.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max processes             63704                63704                processes
Max open files            256                  4096                 files
Max locked memory         8388608              8388608              bytes
`;

describe('storage open-files bound', () => {
  it('reads the soft open-file limit of the process', () => {
    expect(processOpenFilesLimit(() => LIMITS)).toBe(256);
    expect(processOpenFilesLimit(() => LIMITS.replace(/256 /, 'unlimited '))).toBeNull();
    expect(
      processOpenFilesLimit(() => {
        throw new Error('no /proc');
      }),
    ).toBeNull();
    // This process (Linux): a positive number.
    const own = processOpenFilesLimit();
    if (own !== null) expect(own).toBeGreaterThan(0);
  });

  it('lowers openFilesMax to half the process limit, never raises it', () => {
    expect(storageOpenFilesMax(1024, 256)).toEqual({ openFilesMax: 128, lowered: true });
    expect(storageOpenFilesMax(1024, 65536)).toEqual({ openFilesMax: 1024, lowered: false });
    expect(storageOpenFilesMax(1024, null)).toEqual({ openFilesMax: 1024, lowered: false });
    expect(storageOpenFilesMax(64, 1)).toEqual({ openFilesMax: 1, lowered: true });
  });

  it('is configured as limits.openFilesMax (default 1024, at least 16)', () => {
    expect(loadConfig({}).limits.openFilesMax).toBe(1024);
    expect(
      loadConfig({ env: { STREAMBUS_LIMITS_OPEN_FILES_MAX: '300' } }).limits.openFilesMax,
    ).toBe(300);
    expect(() => loadConfig({ flags: { 'limits.open-files-max': '8' } })).toThrow(
      /limits.openFilesMax: expected an integer in 16..1000000, got '8'/,
    );
  });
});

import { describe, expect, it } from 'vitest';
import { threadPoolSizeOf, UV_THREADPOOL_SIZE_DEFAULT, withThreadPoolSize } from './thread-pool.js';

describe('thread pool size', () => {
  it('launchers add the default only where the user set nothing', () => {
    expect(withThreadPoolSize({ PATH: '/bin' })).toEqual({
      PATH: '/bin',
      UV_THREADPOOL_SIZE: String(UV_THREADPOOL_SIZE_DEFAULT),
    });
    expect(withThreadPoolSize({ UV_THREADPOOL_SIZE: '' }).UV_THREADPOOL_SIZE).toBe(
      String(UV_THREADPOOL_SIZE_DEFAULT),
    );
    expect(withThreadPoolSize({ UV_THREADPOOL_SIZE: '2' }).UV_THREADPOOL_SIZE).toBe('2');
  });

  it('reads the variable as libuv does', () => {
    expect(threadPoolSizeOf(undefined)).toBe(4);
    expect(threadPoolSizeOf('16')).toBe(16);
    expect(threadPoolSizeOf(' 8 threads')).toBe(8);
    expect(threadPoolSizeOf('0')).toBe(1);
    expect(threadPoolSizeOf('many')).toBe(1);
    expect(threadPoolSizeOf('5000')).toBe(1024);
    expect(threadPoolSizeOf('-1')).toBe(1024);
  });
});

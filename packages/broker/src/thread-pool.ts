// The libuv thread pool of a broker process. Every asynchronous fs call (segment writes, fsyncs,
// reads for fetches) runs on it, and libuv's default is 4 threads: four partitions fsyncing at
// once occupy all of them and every write queues behind a slow fsync. libuv reads
// UV_THREADPOOL_SIZE once, when the pool is first used; an ES module entry is itself read
// through the pool, so a broker's `main` cannot change it. Whatever starts a broker process sets
// it in that process's environment instead (unless the user already did): the `streambus` bin
// (bin/streambus.cjs, CommonJS so it runs before any pool use), `npm start` (through that bin),
// `streambus dev` children, the test and bench harnesses (withThreadPoolSize below).

/** The pool size launchers give a broker when the user did not choose one. */
export const UV_THREADPOOL_SIZE_DEFAULT = 16;

/** libuv's bounds (MAX_THREADPOOL_SIZE in src/threadpool.c). */
const UV_THREADPOOL_SIZE_MAX = 1024;
const UV_THREADPOOL_SIZE_LIBUV_DEFAULT = 4;

/** `env` with UV_THREADPOOL_SIZE set to the default when it is absent or empty. */
export function withThreadPoolSize<E extends Record<string, string | undefined>>(
  env: E,
): E & { UV_THREADPOOL_SIZE: string } {
  const own = env.UV_THREADPOOL_SIZE;
  return {
    ...env,
    UV_THREADPOOL_SIZE: own === undefined || own === '' ? String(UV_THREADPOOL_SIZE_DEFAULT) : own,
  };
}

/**
 * The pool size libuv takes from `value` (the UV_THREADPOOL_SIZE it saw): 4 when unset, at
 * least 1, at most 1024, the leading integer of the text as C's atoi reads it.
 */
export function threadPoolSizeOf(value: string | undefined): number {
  if (value === undefined) return UV_THREADPOOL_SIZE_LIBUV_DEFAULT;
  const m = /^\s*([+-]?\d+)/.exec(value);
  const n = m === null ? 0 : Number(m[1]);
  // libuv stores atoi's result in an unsigned int: a negative value becomes huge, then 1024.
  if (n < 0 || n > UV_THREADPOOL_SIZE_MAX) return UV_THREADPOOL_SIZE_MAX;
  return n === 0 ? 1 : n;
}

/**
 * This process's pool size, from its environment as it was when the first module of the broker
 * loaded (before any code of ours could change it; the pool was sized before that).
 */
const atLoad = process.env.UV_THREADPOOL_SIZE;
export function processThreadPoolSize(): number {
  return threadPoolSizeOf(atLoad);
}

// Modules a process loads only when it first needs them (start-up cost, issue 12): the Kafka
// compression codecs' bindings (snappy, lz4-napi, fzstd) are used only by batches compressed
// with them, which most StreamBus traffic never carries, yet loading them (native addon lookup,
// dlopen, CommonJS compile) was about a tenth of a broker's module-loading CPU at every start.
//
//   lazyModule<T>(specifier, codec)   a getter: the first call loads the module synchronously
//                                     (CommonJS require resolved from this package), later
//                                     calls return it; a module that cannot load raises
//                                     UNSUPPORTED_COMPRESSION_TYPE naming the codec and why, on
//                                     each use, instead of failing the process at import.
import { createRequire } from 'node:module';
import { unsupportedCompression } from './compression-errors.js';

const requireHere = createRequire(import.meta.url);

export function lazyModule<T>(specifier: string, codec: number): () => T {
  let loaded: T | null = null;
  let failure: unknown = null;
  return () => {
    if (loaded !== null) return loaded;
    if (failure === null) {
      try {
        loaded = requireHere(specifier) as T;
        return loaded;
      } catch (err) {
        failure = err;
      }
    }
    throw Object.assign(
      unsupportedCompression(
        codec,
        `is not available: ${specifier} did not load (${(failure as Error).message})`,
      ),
      { cause: failure },
    );
  };
}

// The native wire protocol: frames, message schemas and body codecs.
export * from './codec.js';
export * from './frame.js';
export * from './frame-assembler.js';
export * from './messages.js';
export * from './msgpack-scan.js';
export * from './pack-parts.js';
export type { Infer, Schema } from './schema.js';
export * as schema from './schema.js';

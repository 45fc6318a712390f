// @streambus/protocol: pure formats shared by broker and client. No sockets, no files.
export * from './errors.js';

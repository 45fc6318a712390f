// @streambus/raft: public entry. See README.md and ../../docs for what this package owns.
export const PACKAGE_NAME = '@streambus/raft';

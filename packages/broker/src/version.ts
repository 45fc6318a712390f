// The broker's version, as ApiVersions reports it.
export const BROKER_VERSION = '0.1.0';

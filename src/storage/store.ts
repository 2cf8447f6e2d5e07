import path from 'node:path';
import type { Config } from '../config/index.js';
import { LocalObjectStore } from './local.js';
import { S3ObjectStore } from './s3.js';
import type { ObjectStore } from './types.js';

/** The object store the configuration names (S3 when configured, else files under DATA_DIR): the server's and the import's. */
export function objectStoreFor(config: Config): ObjectStore {
  return config.s3
    ? new S3ObjectStore(config.s3)
    : new LocalObjectStore(path.join(path.resolve(config.dataDir), 'storage'), config.publicUrl, config.jwt.secret);
}

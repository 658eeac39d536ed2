// Reading a file a pod can reach (the state file of its allocation) without letting the pod hang
// or flood the node agent: open with O_NOFOLLOW | O_NONBLOCK (a symlink is refused, a FIFO or
// device does not block the open), accept only a regular file of exactly the expected size, read
// that many bytes and no more, and do every step on libuv's thread pool, never on the event loop.
import type { Stats } from 'node:fs';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

/** The file could not be read as the expected regular file; the message says what it was instead. */
export class PodFileError extends Error {
  override readonly name = 'PodFileError';
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

export interface ExactFile {
  /** Exactly `size` bytes, read at offset 0. */
  bytes: Buffer;
  /** The open descriptor (valid only during the callback), for queries on the same file, e.g. locks. */
  fd: number;
}

function kind(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** Opens `path`, checks it is a regular file of `size` bytes, reads it whole and hands it to `use`. */
export async function readExactFile<T>(path: string, size: number, use: (file: ExactFile) => T | Promise<T>): Promise<T> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new PodFileError(path, 'is a symbolic link; expected a regular file (links are never followed)');
    throw err;
  }
  try {
    const before = await fh.stat();
    if (!before.isFile()) throw new PodFileError(path, `is ${kind(before)}; expected a regular file of ${size} bytes`);
    if (before.size !== size) throw new PodFileError(path, `is ${before.size} bytes; expected exactly ${size}`);
    const bytes = Buffer.alloc(size);
    const { bytesRead } = await fh.read(bytes, 0, size, 0);
    const after = await fh.stat();
    if (bytesRead !== size || after.size !== size) {
      throw new PodFileError(path, `changed while being read (${bytesRead} of ${size} bytes read, now ${after.size} bytes); read again later`);
    }
    return await use({ bytes, fd: fh.fd });
  } finally {
    await fh.close();
  }
}

// mkfifo(3) for tests, through koffi (Node has no mkfifo of its own).
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const mkfifo = libc.func('int mkfifo(const char *path, uint32_t mode)');

export function mkfifoSync(path: string, mode = 0o666): void {
  if ((mkfifo(path, mode) as number) !== 0) throw new Error(`mkfifo ${path} failed`);
}

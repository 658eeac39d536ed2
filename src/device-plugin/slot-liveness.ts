// Which usage slots of a state file belong to running processes. A shim holds an OFD write lock
// on its slot's byte range for as long as it runs (native/src/control.c), and the kernel drops the
// lock when the process dies, so F_OFD_GETLK from our own open file description tells a live
// owner from a dead one across the pod's PID namespaces, where the slot's pid means nothing here.
// F_OFD_GETLK never waits, so asking is safe on a descriptor of a pod-reachable file.
import koffi from 'koffi';
import { STATE_OFFSETS, STATE_SLOT_COUNT, STATE_SLOT_SIZE } from './control-file.js';

// Linux values, the same on x86_64 and aarch64 (asm-generic/fcntl.h).
const F_OFD_GETLK = 36;
const F_WRLCK = 1;
const F_UNLCK = 2;
const SEEK_SET = 0;

interface Fcntl {
  getlk(fd: number, start: number, len: number): number;
}

let fcntl: Fcntl | null | undefined;

function loadFcntl(): Fcntl | null {
  if (fcntl !== undefined) return fcntl;
  try {
    const libc = koffi.load('libc.so.6');
    // struct flock (LP64 Linux): short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid.
    const flock = koffi.struct({ l_type: 'short', l_whence: 'short', l_start: 'int64', l_len: 'int64', l_pid: 'int' });
    const call = libc.func('int fcntl(int fd, int cmd, ...)');
    const inout = koffi.inout(koffi.pointer(flock));
    fcntl = {
      getlk(fd, start, len) {
        const fl = { l_type: F_WRLCK, l_whence: SEEK_SET, l_start: start, l_len: len, l_pid: 0 };
        if ((call(fd, F_OFD_GETLK, inout, fl) as number) !== 0) return -1;
        return fl.l_type;
      },
    };
  } catch {
    fcntl = null;
  }
  return fcntl;
}

/** Indexes of the slots whose owner still holds its lock, asked on `fd` (an open state file);
 *  undefined when locks cannot be queried here (no libc). */
export function liveSlots(fd: number): Set<number> | undefined {
  const f = loadFcntl();
  if (!f) return undefined;
  const live = new Set<number>();
  for (let i = 0; i < STATE_SLOT_COUNT; i++) {
    const type = f.getlk(fd, STATE_OFFSETS.slots + i * STATE_SLOT_SIZE, STATE_SLOT_SIZE);
    if (type < 0) return undefined;
    if (type !== F_UNLCK) live.add(i);
  }
  return live;
}

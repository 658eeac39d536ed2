// What a least-privilege test asserts of a write the API server must refuse: it fails with 403, and
// where a message is given, the Status message says why (an admission policy's messageExpression).
import { expect } from '@jest/globals';

export async function expectRefused(write: Promise<unknown>, message?: RegExp): Promise<void> {
  const err = (await write.then(() => undefined, (e: unknown) => e)) as { code?: number; body?: string } | undefined;
  expect(err?.code).toBe(403);
  if (message) expect((JSON.parse(err!.body!) as { message: string }).message).toMatch(message);
}

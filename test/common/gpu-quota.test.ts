import { ValidationError } from '../../src/common/errors.js';
import { checkGpuQuota, parseGpuCores, parseGpuQuota, parseQuantityBytes } from '../../src/common/gpu-quota.js';

describe('GPU quota annotations', () => {
  it('parses core shares from 1 to 100 and names the annotation otherwise', () => {
    expect(parseGpuCores('1')).toBe(1);
    expect(parseGpuCores('100')).toBe(100);
    for (const bad of ['0', '101', '2.5', '', 'abc', '-3', ' 30']) {
      expect(() => parseGpuCores(bad)).toThrow(ValidationError);
    }
    expect(() => parseGpuCores('abc')).toThrow('sair.dev/gpu-cores: "abc" is not an integer from 1 to 100');
  });

  it('parses memory quantities to bytes, rounding up', () => {
    expect(parseQuantityBytes('8Gi')).toBe(8n << 30n);
    expect(parseQuantityBytes('512Mi')).toBe(512n << 20n);
    expect(parseQuantityBytes('2e9')).toBe(2_000_000_000n);
    expect(parseQuantityBytes('1.5G')).toBe(1_500_000_000n);
    expect(parseQuantityBytes('1500m')).toBe(2n);
    expect(parseQuantityBytes('0.5Ki')).toBe(512n);
    for (const bad of ['0', '-1Gi', '8GB', 'lots', '', '1e40']) {
      expect(() => parseQuantityBytes(bad)).toThrow(/^sair\.dev\/gpu-memory: .* is not a Kubernetes quantity greater than 0/);
    }
  });

  it('defaults to the whole GPU and no memory quota', () => {
    expect(parseGpuQuota({})).toEqual({ gpuCores: 100, memoryBytes: 0n, coresSet: false, memorySet: false });
  });

  it('collects every bad annotation', () => {
    const r = checkGpuQuota({ 'sair.dev/gpu-cores': '0', 'sair.dev/gpu-memory': 'x' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map((e) => e.field)).toEqual(['sair.dev/gpu-cores', 'sair.dev/gpu-memory']);
    expect(checkGpuQuota({ 'sair.dev/gpu-cores': '30', 'sair.dev/gpu-memory': '1Gi' })).toEqual({
      ok: true,
      quota: { gpuCores: 30, memoryBytes: 1n << 30n, coresSet: true, memorySet: true },
    });
  });
});

describe('parseGpuCores', () => {
  it.each([
    ['1', 1],
    ['30', 30],
    ['100', 100],
    ['007', 7],
  ])('accepts %s', (value, expected) => {
    expect(parseGpuCores(value)).toBe(expected);
  });

  it.each(['0', '101', 'abc', '', '30%', '2.5', '-5', ' 30', '1e2', '1000'])('rejects %j naming the annotation and the form', (value) => {
    expect(() => parseGpuCores(value)).toThrow(`sair.dev/gpu-cores: ${JSON.stringify(value)} is not an integer from 1 to 100`);
  });
});

describe('parseQuantityBytes', () => {
  it.each([
    ['8Gi', 8n * 1024n ** 3n],
    ['512Mi', 512n * 1024n ** 2n],
    ['1.5Gi', 1610612736n],
    ['2000000000', 2000000000n],
    ['2G', 2000000000n],
    ['1k', 1000n],
    ['1Ki', 1024n],
    ['1e9', 1000000000n],
    ['1E3', 1000n],
    ['+5M', 5000000n],
    ['.5Ki', 512n],
    ['1500m', 2n],
    ['1n', 1n],
    ['1Ei', 1n << 60n],
  ])('%s is %s bytes', (value, bytes) => {
    expect(parseQuantityBytes(value)).toBe(bytes);
  });

  it.each(['0', '0Gi', '-1Gi', 'Gi', '8GB', '8 Gi', '8gi', 'lots', '', '1e40', '8Ei', '0.0'])('rejects %j', (value) => {
    expect(() => parseQuantityBytes(value)).toThrow(`sair.dev/gpu-memory: ${JSON.stringify(value)} is not a Kubernetes quantity greater than 0`);
  });
});

describe('parseGpuQuota', () => {
  it('defaults to a whole GPU and no memory quota', () => {
    expect(parseGpuQuota(undefined)).toEqual({ gpuCores: 100, memoryBytes: 0n, coresSet: false, memorySet: false });
  });

  it('reads both annotations', () => {
    expect(parseGpuQuota({ 'sair.dev/gpu-cores': '25', 'sair.dev/gpu-memory': '4Gi', other: 'x' })).toEqual({
      gpuCores: 25,
      memoryBytes: 4n << 30n,
      coresSet: true,
      memorySet: true,
    });
  });
});

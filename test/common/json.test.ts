import { fromJson, toJson } from '../../src/common/json.js';

describe('SAIR JSON', () => {
  it('keeps non-finite numbers that plain JSON would turn into null, and reads them back', () => {
    const value = { p99Ms: Infinity, low: -Infinity, mean: NaN, n: 3, name: 'Infinity-free' };
    const text = toJson(value);
    expect(text).toBe('{"p99Ms":"Infinity","low":"-Infinity","mean":"NaN","n":3,"name":"Infinity-free"}');
    expect(fromJson(text)).toEqual(value);
  });

  it('indents like JSON.stringify', () => {
    expect(toJson({ a: [1] }, 2)).toBe(JSON.stringify({ a: [1] }, null, 2));
  });
});

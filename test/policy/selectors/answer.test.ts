// Reading the LLM's answer: reasoning dropped, the action held to the candidates.
import { parseAnswer, responseFormat, stripReasoning } from '../../../src/policy/selectors/answer.js';

const ids = ['hold', 's0+1'];

describe('stripReasoning', () => {
  it('drops <think> blocks, a closing tag alone and harmony analysis channels', () => {
    expect(stripReasoning('<think>maybe {"action":"s0+1"}</think>\n{"action":"hold"}')).toEqual({ text: '{"action":"hold"}', unfinished: false });
    expect(stripReasoning('thoughts opened by the template</think>{"action":"hold"}').text).toBe('{"action":"hold"}');
    expect(stripReasoning('<THINKING>a</THINKING> hold').text).toBe('hold');
    expect(stripReasoning('<|channel|>analysis<|message|>hmm<|end|><|start|>assistant<|channel|>final<|message|>{"action":"hold"}<|return|>').text).toBe('{"action":"hold"}');
  });
  it('says when the answer ended inside the reasoning', () => {
    expect(stripReasoning('<think>still going')).toEqual({ text: '', unfinished: true });
    expect(stripReasoning('<|channel|>analysis<|message|>still going')).toEqual({ text: '', unfinished: true });
  });
});

describe('parseAnswer', () => {
  it('accepts plain JSON, JSON in prose or after reasoning, and a bare id', () => {
    expect(parseAnswer('{"action":"s0+1","reason":"r","bottleneck":0}', ids)).toEqual({ action: 's0+1', reason: 'r', bottleneck: 0 });
    expect(parseAnswer('ok: {"action":"hold"} done', ids).action).toBe('hold');
    expect(parseAnswer('<think>{"action":"s9+9"}</think>{"action":"hold"}', ids).action).toBe('hold');
    expect(parseAnswer(' hold ', ids).action).toBe('hold');
  });
  it('names what is wrong', () => {
    expect(() => parseAnswer('{"action": 3}', ids)).toThrow(/^malformed/);
    expect(() => parseAnswer('{"action":"s7+1"}', ids)).toThrow(/^invalid-action: "s7\+1" is not one of the candidates hold, s0\+1/);
    expect(() => parseAnswer('<think>long', ids)).toThrow(/^truncated/);
    expect(() => parseAnswer('', ids)).toThrow(/^empty/);
  });
});

describe('responseFormat', () => {
  it('holds the action to the ids, with no string constraint a grammar backend or strict mode refuses', () => {
    const f = responseFormat(ids);
    expect(f.json_schema.schema.properties.action.enum).toEqual(ids);
    expect(JSON.stringify(f)).not.toMatch(/maxLength|minLength|pattern/);
  });
});

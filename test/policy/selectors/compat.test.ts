// Request-shape negotiation: which refusals move the shape, in which order, and which do not.
import { CompatMemory, FIRST_SHAPE, nextShape, refusalOf } from '../../../src/policy/selectors/compat.js';

const refusal = (status: number, message: string, param: string | null = null, code: string | null = null) => ({ status, message, param, code });

describe('nextShape', () => {
  it('moves structured output down one step per refusal: json_schema, json_object, the prompt', () => {
    const r = refusal(400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.", 'response_format');
    const a = nextShape(FIRST_SHAPE, r)!;
    expect(a.shape.output).toBe('json_object');
    expect(a.learned).toMatch(/^structured output json_object: json_schema refused \(400 "Invalid parameter/);
    expect(nextShape(a.shape, refusal(400, 'xgrammar does not support Mistral tokenizer.'))!.shape.output).toBe('prompt');
    expect(nextShape({ ...a.shape, output: 'prompt' }, r)).toBeNull();
  });

  it("reads vLLM's and llama.cpp's refusals, llama.cpp's old 500 included", () => {
    expect(nextShape(FIRST_SHAPE, refusal(400, 'The provided JSON schema contains features not supported by xgrammar.'))?.shape.output).toBe('json_object');
    expect(nextShape(FIRST_SHAPE, refusal(500, 'response_format type must be one of "text" or "json_object", but got: json_schema'))?.shape.output).toBe('json_object');
  });

  it("switches to max_completion_tokens and drops the temperature on OpenAI's reasoning models", () => {
    const a = nextShape(FIRST_SHAPE, refusal(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", 'max_tokens', 'unsupported_parameter'))!;
    expect(a.shape).toEqual({ ...FIRST_SHAPE, tokenParam: 'max_completion_tokens' });
    const b = nextShape(a.shape, refusal(400, "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is supported.", 'temperature', 'unsupported_value'))!;
    expect(b.shape).toEqual({ output: 'json_schema', tokenParam: 'max_completion_tokens', temperature: false });
  });

  it('leaves every other error alone: a context overflow, an unknown model, an overload, a bad key', () => {
    expect(nextShape(FIRST_SHAPE, refusal(400, "'max_tokens' or 'max_completion_tokens' is too large: 256. This model's maximum context length is 4096 tokens."))).toBeNull();
    expect(nextShape(FIRST_SHAPE, refusal(404, 'model "m" not found, try pulling it first'))).toBeNull();
    expect(nextShape(FIRST_SHAPE, refusal(500, 'CUDA out of memory'))).toBeNull();
    expect(nextShape(FIRST_SHAPE, refusal(401, 'Incorrect API key provided'))).toBeNull();
  });
});

describe('refusalOf', () => {
  it('reads every server error body', () => {
    expect(refusalOf(400, { message: 'm', type: 'invalid_request_error', param: 'response_format', code: null }, 'x')).toEqual(refusal(400, 'm', 'response_format'));
    expect(refusalOf(400, { error: { message: 'm', type: 'BadRequestError', param: null, code: 400 } }, 'x')).toEqual(refusal(400, 'm', null, '400'));
    expect(refusalOf(400, { object: 'error', message: 'm', type: 'BadRequestError', param: null, code: 400 }, 'x')).toEqual(refusal(400, 'm', null, '400'));
    expect(refusalOf(500, { error: { code: 500, message: 'm', type: 'server_error' } }, 'x')).toEqual(refusal(500, 'm', null, '500'));
    expect(refusalOf(404, { error: 'model "m" not found' }, 'x')).toEqual(refusal(404, 'model "m" not found'));
    expect(refusalOf(502, undefined, 'Bad Gateway')).toEqual(refusal(502, 'Bad Gateway'));
  });
});

describe('CompatMemory', () => {
  it('keeps a shape per base URL and model, trailing slashes aside', () => {
    const m = new CompatMemory();
    const k = CompatMemory.key('http://vllm:8000/v1/', 'qwen');
    expect(k).toBe(CompatMemory.key('http://vllm:8000/v1', 'qwen'));
    m.learn(k, { ...FIRST_SHAPE, output: 'json_object' }, 'why');
    expect(m.get(k)).toEqual({ shape: { ...FIRST_SHAPE, output: 'json_object' }, learned: ['why'], confirmed: false });
    expect(m.get(CompatMemory.key('http://vllm:8000/v1', 'llama')).shape).toBe(FIRST_SHAPE);
    expect(m.confirm(k)).toBe(true);
    expect(m.confirm(k)).toBe(false);
  });
});

// Drive one real Node emitter against the local fake server; its OTLP goes to a receiver.
// Run by ../capture.py from a folder where package.json (beside this file) is installed:
//   node drive.mjs EMITTER API_BASE OTLP_ENDPOINT
// The calls mirror ../drive_py.py: chat with parameters, a tool call, the tool's result sent
// back, a stream with usage (2 cached prompt tokens), an embedding, an error (HTTP 400).
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { z } from 'zod';

const [emitter, apiBase, endpoint] = process.argv.slice(2);
const apiKey = 'sk-test-not-a-real-key';
const SYSTEM = 'You are a terse assistant.';
const QUESTION = 'What is the capital of France?';

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ 'service.name': `corpus-${emitter}` }),
  spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` }))],
});
provider.register();

async function vercel(major) {
  const ai = await import(`ai${major}`);
  const { createOpenAI } = await import(`ai-sdk-openai${{ 4: 1, 5: 2, 6: 3, 7: 4 }[major]}`);
  const openai = createOpenAI({ baseURL: apiBase, apiKey, ...(major === 4 ? { compatibility: 'strict' } : {}) });
  let telemetry = { isEnabled: true, functionId: 'corpus' };
  if (major === 7) {
    const otel = await import('ai-sdk-otel1');
    const legacy = emitter.endsWith('-legacy');
    ai.registerTelemetry(legacy ? new otel.LegacyOpenTelemetry() : new otel.OpenTelemetry());
  }
  const chat = (id) => openai.chat(id);
  const schema = z.object({ query: z.string() });
  const weather = major === 4
    ? ai.tool({ description: 'Current weather for a city', parameters: schema, execute: async () => ({ temp_c: 21 }) })
    : ai.tool({ description: 'Current weather for a city', inputSchema: schema, execute: async () => ({ temp_c: 21 }) });
  const common = { experimental_telemetry: telemetry, maxRetries: 0 };

  await ai.generateText({
    ...common, model: chat('echo@cached=3'), system: SYSTEM, prompt: QUESTION,
    temperature: 0.2, topP: 0.9, seed: 7, stopSequences: ['END'], presencePenalty: 0.1, frequencyPenalty: 0.2,
    ...(major === 4 ? { maxTokens: 50 } : { maxOutputTokens: 50 }),
  });
  const user = { role: 'user', content: 'Weather in Paris?' };
  const first = await ai.generateText({ ...common, model: chat('tool:get_weather'), tools: { get_weather: weather },
    messages: [user] });
  await ai.generateText({ ...common, model: chat('const:It is sunny in Paris.'), tools: { get_weather: weather },
    messages: [user, ...first.response.messages] });
  const stream = ai.streamText({ ...common, model: chat('echo@ttft=40,cached=2'),
    prompt: 'Stream these five words back' });
  for await (const _ of stream.textStream) { /* consume */ }
  const embeddingModel = (openai.embedding ?? openai.textEmbeddingModel).call(openai, 'text-embedding-3-small');
  await ai.embed({ ...common, model: embeddingModel, value: 'hello world' });
  try {
    await ai.generateText({ ...common, model: chat('echo@status=400'), prompt: 'This call fails' });
  } catch { /* the error span is what we record */ }
}

async function openinference() {
  const { OpenAIInstrumentation } = await import('@arizeai/openinference-instrumentation-openai');
  const OpenAI = (await import('openai')).default;
  const inst = new OpenAIInstrumentation();
  inst.setTracerProvider(provider);
  inst.manuallyInstrument(OpenAI);
  const client = new OpenAI({ baseURL: apiBase, apiKey, maxRetries: 0 });
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
  await client.chat.completions.create({ model: 'echo', messages: [{ role: 'system', content: SYSTEM },
    { role: 'user', content: QUESTION }], temperature: 0.2, top_p: 0.9, max_tokens: 50, seed: 7, stop: ['END'],
    presence_penalty: 0.1, frequency_penalty: 0.2 });
  const first = await client.chat.completions.create({ model: 'tool:get_weather', tools,
    messages: [{ role: 'user', content: 'Weather in Paris?' }] });
  const call = first.choices[0].message.tool_calls[0];
  await client.chat.completions.create({ model: 'const:It is sunny in Paris.', tools, messages: [
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: call.function }] },
    { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ temp_c: 21 }) }] });
  const stream = await client.chat.completions.create({ model: 'echo@ttft=40,cached=2', stream: true,
    stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Stream these five words back' }] });
  for await (const _ of stream) { /* consume */ }
  await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello world' });
  try {
    await client.chat.completions.create({ model: 'echo@status=400', messages: [{ role: 'user', content: 'This call fails' }] });
  } catch { /* recorded as an error span */ }
}

const match = /^vercel-ai-(\d)/.exec(emitter);
if (match) await vercel(Number(match[1]));
else if (emitter === 'openinference-js') await openinference();
else throw new Error(`unknown emitter ${emitter}`);
await provider.forceFlush();
await provider.shutdown();

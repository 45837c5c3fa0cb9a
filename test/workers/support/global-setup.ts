// Runs in Node before the workers project: starts the scripted origins (real
// HTTP servers on loopback that play the GPU service), the image server the
// URL-fetch tests read from and the webhook receiver jobs report to, and
// hands their URLs to the pool (wrangler bindings, see vitest.config.ts) and
// to the tests (`inject(...)`).
import type { TestProject } from 'vitest/node';
import { startScriptedOrigins } from './scripted-origins.js';
import { startImageServer } from './image-server.js';
import { startWebhookReceiver } from './webhook-receiver.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Base URLs of the scripted origins, in order (ORIGINS of the workers project). */
    scriptedOrigins: string[];
    /** Base URL of the scripted origins' control API (see scripted-origins.ts). */
    scriptedOriginControl: string;
    /** Base URL of the image server (see image-server.ts). */
    imageServer: string;
    /** Base URL of the webhook receiver (see webhook-receiver.ts). */
    webhookReceiver: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const origins = await startScriptedOrigins(3);
  const images = await startImageServer();
  const receiver = await startWebhookReceiver();
  project.provide('scriptedOrigins', origins.urls);
  project.provide('scriptedOriginControl', origins.controlUrl);
  project.provide('imageServer', images.url);
  project.provide('webhookReceiver', receiver.url);
  return async () => {
    await Promise.all([origins.close(), images.close(), receiver.close()]);
  };
}

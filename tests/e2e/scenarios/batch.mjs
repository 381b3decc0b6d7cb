// Scenario 6a: batch triggers through the Node SDK (and the PyPI SDK at stage "python"),
// received in order across channels; channel info through trigger params and GET /channels.
import { connected, pusherClient, record, scenario, serverSdk, stage, subscribed } from './lib.mjs';

scenario('batch', async () => {
  const sdk = serverSdk();
  const a = pusherClient();
  const b = pusherClient();
  await Promise.all([connected(a), connected(b)]);
  const channels = [];
  for (const name of ['batch-a', 'batch-b', 'batch-c']) channels.push(await subscribed(a, name));
  await subscribed(b, 'batch-a');
  const inbox = record('client A', ...channels);

  const batch = await sdk.triggerBatch([
    { channel: 'batch-a', name: 'first', data: { n: 1 }, info: 'subscription_count' },
    { channel: 'batch-b', name: 'second', data: { n: 2 }, info: 'subscription_count' },
    { channel: 'batch-a', name: 'third', data: { n: 3 }, info: 'subscription_count' },
    { channel: 'batch-c', name: 'fourth', data: 'four', info: 'subscription_count' },
  ]);
  const batchBody = await batch.json();
  await inbox.waitEvent('fourth');

  const trigger = await sdk.trigger(['batch-a', 'batch-b'], 'with-info', { n: 5 }, {
    info: 'subscription_count',
  });
  const triggerBody = await trigger.json();
  await inbox.waitFor((item) => item.event === 'with-info' && item.channel === 'batch-b', 'with-info');

  const get = async (path, params) => (await sdk.get({ path, params })).json();
  const channelInfo = await get('/channels/batch-a', { info: 'subscription_count' });
  const emptyInfo = await get('/channels/batch-empty', { info: 'subscription_count' });
  const list = await get('/channels', { filter_by_prefix: 'batch-', info: 'subscription_count' });
  const plainList = await get('/channels');

  await stage('python', {});
  await inbox.waitEvent('py-third');

  return {
    batch_status: batch.status,
    batch_body: batchBody,
    trigger_body: triggerBody,
    channel_info: channelInfo,
    empty_info: emptyInfo,
    list,
    plain_list: plainList,
    events: inbox.items,
  };
});

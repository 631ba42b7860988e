import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type InteropWorld,
  requirePaho,
  requireTool,
  run,
  SYSTEM_PYTHON,
  startInteropWorld,
} from './helpers.ts';

/**
 * The control plane proven against a second real AWS client: boto3's `iot` client (Debian python3-boto3,
 * the system interpreter) creates a group job with an abort criterion, rollout rate, retry and timeout
 * settings; devices driven by paho-mqtt report over the Jobs MQTT API; the stack cancels the job once
 * enough devices fail, the queued executions become CANCELED and DescribeJob says why. Also job
 * templates, scheduling, RemoveThingFromThingGroup and DeleteThing through boto3.
 */

const SCRIPT = `
import datetime, json, os, queue, ssl, sys, time
import boto3
import paho.mqtt.client as mqtt

E = json.loads(os.environ['ENDPOINTS'])
iot = boto3.client('iot', endpoint_url=E['iot']['endpoint'], region_name=E['region'],
                   aws_access_key_id=E['iot']['accessKeyId'], aws_secret_access_key=E['iot']['secretAccessKey'])
things = json.loads(os.environ['THINGS'])
out = {}

iot.create_thing_group(thingGroupName='boto-fleet')
for t in things:
    iot.add_thing_to_thing_group(thingGroupName='boto-fleet', thingName=t)
group_arn = iot.describe_thing_group(thingGroupName='boto-fleet')['thingGroupArn']
job = iot.create_job(
    jobId='boto-abort', targets=[group_arn], document=json.dumps({'firmware': {'version': '41811021'}}),
    jobExecutionsRolloutConfig={'maximumPerMinute': 1000},
    abortConfig={'criteriaList': [{'failureType': 'FAILED', 'action': 'CANCEL',
                                   'thresholdPercentage': 50.0, 'minNumberOfExecutedThings': 2}]},
    jobExecutionsRetryConfig={'criteriaList': [{'failureType': 'TIMED_OUT', 'numberOfRetries': 2}]},
    timeoutConfig={'inProgressTimeoutInMinutes': 60})
out['created'] = job['jobArn']

class Device:
    def __init__(self, thing):
        self.thing, self.prefix, self.replies, self.ready = thing, '$aws/things/%s/jobs' % thing, queue.Queue(), queue.Queue()
        try:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=thing, protocol=mqtt.MQTTv311)
        except AttributeError:
            c = mqtt.Client(client_id=thing, protocol=mqtt.MQTTv311)
        cert = E['things'][thing]
        c.tls_set(ca_certs=E['rootCA'], certfile=cert['cert'], keyfile=cert['key'], tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe([(self.prefix + '/#', 1)])
        c.on_subscribe = lambda cl, u, mid, q, p=None: self.ready.put(q)
        c.on_message = lambda cl, u, m: self.replies.put((m.topic, json.loads(m.payload.decode())))
        c.connect(E['mqtt']['host'], E['mqtt']['port'], keepalive=60)
        c.loop_start()
        self.ready.get(timeout=10)
        self.client = c

    def request(self, suffix, payload):
        token = '%s-%s' % (self.thing, suffix.replace('/', '-'))
        self.client.publish('%s/%s' % (self.prefix, suffix), json.dumps(dict(payload, clientToken=token)), qos=1).wait_for_publish()
        deadline = time.time() + 10
        while True:
            topic, body = self.replies.get(timeout=max(0.1, deadline - time.time()))
            if body.get('clientToken') == token:
                return topic.rsplit('/', 1)[1], body

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()

devices = [Device(t) for t in things[:3]]
out['start0'] = devices[0].request('start-next', {})[0]            # stays IN_PROGRESS
out['fail1'] = devices[1].request('boto-abort/update', {'status': 'FAILED'})[0]
out['after_one'] = iot.describe_job(jobId='boto-abort')['job']['status']
out['fail2'] = devices[2].request('boto-abort/update', {'status': 'FAILED'})[0]
j = iot.describe_job(jobId='boto-abort')['job']
out['job'] = {k: j.get(k) for k in ('status', 'reasonCode', 'comment', 'forceCanceled', 'jobExecutionsRolloutConfig',
                                    'abortConfig', 'jobExecutionsRetryConfig', 'timeoutConfig', 'jobProcessDetails')}
out['executions'] = sorted(
    (s['thingArn'].split('/')[-1], s['jobExecutionSummary']['status'], s['jobExecutionSummary'].get('retryAttempt'))
    for s in iot.list_job_executions_for_job(jobId='boto-abort')['executionSummaries'])
out['canceled_listed'] = len(iot.list_job_executions_for_job(jobId='boto-abort', status='CANCELED')['executionSummaries'])
# The in-progress device runs on and finishes.
out['finish0'] = devices[0].request('boto-abort/update', {'status': 'SUCCEEDED'})[0]
for d in devices:
    d.close()

# Job templates.
tpl = iot.create_job_template(jobTemplateId='boto-tpl', description='firmware at 5 a minute',
                              document=json.dumps({'firmware': {'version': '41811022'}}),
                              jobExecutionsRolloutConfig={'maximumPerMinute': 5})
iot.create_job(jobId='boto-from-tpl', targets=[group_arn], jobTemplateArn=tpl['jobTemplateArn'])
out['from_tpl'] = iot.describe_job(jobId='boto-from-tpl')['job'].get('jobExecutionsRolloutConfig')
out['templates'] = [t['jobTemplateId'] for t in iot.list_job_templates()['jobTemplates']]
out['tpl_described'] = iot.describe_job_template(jobTemplateId='boto-tpl')['description']
iot.delete_job_template(jobTemplateId='boto-tpl')
try:
    iot.describe_job_template(jobTemplateId='boto-tpl')
    out['tpl_gone'] = False
except iot.exceptions.ResourceNotFoundException:
    out['tpl_gone'] = True

# Scheduling: SCHEDULED until its startTime.
start = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)).strftime('%Y-%m-%dT%H:%M')
iot.create_job(jobId='boto-later', targets=[group_arn], document='{}', schedulingConfig={'startTime': start})
out['scheduled'] = [j['jobId'] for j in iot.list_jobs(status='SCHEDULED')['jobs']]

# Validation errors come back as InvalidRequestException with AWS's words.
try:
    iot.create_job(jobId='boto-bad', targets=[group_arn], document='{}',
                   jobExecutionsRetryConfig={'criteriaList': [{'failureType': 'FAILED', 'numberOfRetries': 10},
                                                              {'failureType': 'TIMED_OUT', 'numberOfRetries': 1}]})
except iot.exceptions.InvalidRequestException as e:
    out['invalid'] = e.response['Error']['Message']

# Membership and deletion.
iot.remove_thing_from_thing_group(thingGroupName='boto-fleet', thingName=things[3])
out['members'] = sorted(iot.list_things_in_thing_group(thingGroupName='boto-fleet')['things'])
iot.delete_thing(thingName=things[3])
iot.delete_thing(thingName='never-existed')
try:
    iot.describe_thing(thingName=things[3])
    out['deleted'] = False
except iot.exceptions.ResourceNotFoundException:
    out['deleted'] = True
print(json.dumps(out))
`;

describe('boto3 against the local IoT control plane (jobs)', () => {
  let w: InteropWorld;
  const things = ['boto-0', 'boto-1', 'boto-2', 'boto-3', 'boto-4'];
  before(async () => {
    requireTool(SYSTEM_PYTHON, 'python3');
    requirePaho();
    const boto = await run(SYSTEM_PYTHON, ['-c', 'import boto3']);
    assert.equal(boto.code, 0, `${SYSTEM_PYTHON} cannot import boto3: install python3-boto3\n${boto.stderr}`);
    w = await startInteropWorld('boto3-iot');
    for (const t of things) await w.stack.ensureThing(t);
  });
  after(async () => {
    await w?.close();
  });

  test('a job with an abort criterion, created by boto3, is cancelled once enough devices fail', async () => {
    const r = await run(SYSTEM_PYTHON, ['-c', SCRIPT], {
      env: { ENDPOINTS: JSON.stringify(w.endpoints), THINGS: JSON.stringify(things) },
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
    assert.equal(out.created, 'arn:aws:iot:us-west-2:000000000000:job/boto-abort');
    assert.deepEqual([out.start0, out.fail1, out.fail2], ['accepted', 'accepted', 'accepted']);
    assert.equal(out.after_one, 'IN_PROGRESS', 'one failure is below minNumberOfExecutedThings');
    assert.equal(out.job.status, 'CANCELED');
    assert.equal(out.job.reasonCode, 'ABORT_CRITERIA_MET');
    assert.equal(
      out.job.comment,
      'abortConfig: 2 of 2 executed job executions (100.00%) ended FAILED; the criterion is 50% after at least 2',
    );
    assert.deepEqual(out.job.jobExecutionsRolloutConfig, { maximumPerMinute: 1000 });
    assert.deepEqual(out.job.abortConfig.criteriaList[0], {
      failureType: 'FAILED',
      action: 'CANCEL',
      thresholdPercentage: 50,
      minNumberOfExecutedThings: 2,
    });
    assert.deepEqual(out.job.jobExecutionsRetryConfig, {
      criteriaList: [{ failureType: 'TIMED_OUT', numberOfRetries: 2 }],
    });
    assert.equal(out.job.jobProcessDetails.numberOfCanceledThings, 2);
    assert.equal(out.job.jobProcessDetails.numberOfFailedThings, 2);
    assert.equal(out.job.jobProcessDetails.numberOfInProgressThings, 1);
    assert.deepEqual(out.executions, [
      ['boto-0', 'IN_PROGRESS', 0],
      ['boto-1', 'FAILED', 0],
      ['boto-2', 'FAILED', 0],
      ['boto-3', 'CANCELED', 0],
      ['boto-4', 'CANCELED', 0],
    ]);
    assert.equal(out.canceled_listed, 2);
    assert.equal(out.finish0, 'accepted', 'the in-progress device runs on');
    assert.deepEqual(out.from_tpl, { maximumPerMinute: 5 });
    assert.deepEqual(out.templates, ['boto-tpl']);
    assert.equal(out.tpl_described, 'firmware at 5 a minute');
    assert.equal(out.tpl_gone, true);
    assert.deepEqual(out.scheduled, ['boto-later']);
    assert.equal(
      out.invalid,
      'jobExecutionsRetryConfig.criteriaList: at most 10 retries for a device across all failure types (got 11)',
    );
    assert.deepEqual(out.members, ['boto-0', 'boto-1', 'boto-2', 'boto-4']);
    assert.equal(out.deleted, true);
  });
});

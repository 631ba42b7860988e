import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { matchRoute, ROUTES } from '../../../../src/cloud/control-plane/routes.ts';

function operationOf(method: string, path: string): string | undefined {
  const m = matchRoute(method, path);
  return m.kind === 'match' ? m.route.operation : undefined;
}

describe('matchRoute', () => {
  test('maps the SDK operation paths (method + pattern) to operations', () => {
    assert.equal(operationOf('PUT', '/jobs/j1'), 'CreateJob');
    assert.equal(operationOf('GET', '/jobs/j1'), 'DescribeJob');
    assert.equal(operationOf('DELETE', '/jobs/j1'), 'DeleteJob');
    assert.equal(operationOf('GET', '/jobs/j1/job-document'), 'GetJobDocument');
    assert.equal(operationOf('GET', '/jobs'), 'ListJobs');
    assert.equal(operationOf('GET', '/jobs/j1/things'), 'ListJobExecutionsForJob');
    assert.equal(operationOf('PUT', '/jobs/j1/cancel'), 'CancelJob');
    assert.equal(operationOf('GET', '/things/t1/jobs'), 'ListJobExecutionsForThing');
    assert.equal(operationOf('GET', '/things/t1/jobs/j1'), 'DescribeJobExecution');
    assert.equal(operationOf('PUT', '/things/t1/jobs/j1/cancel'), 'CancelJobExecution');
    assert.equal(operationOf('POST', '/things/t1'), 'CreateThing');
    assert.equal(operationOf('GET', '/things/t1'), 'DescribeThing');
    assert.equal(operationOf('GET', '/things'), 'ListThings');
    assert.equal(operationOf('POST', '/thing-groups/g1'), 'CreateThingGroup');
    assert.equal(operationOf('GET', '/thing-groups/g1'), 'DescribeThingGroup');
    assert.equal(operationOf('GET', '/thing-groups/g1/things'), 'ListThingsInThingGroup');
    assert.equal(operationOf('GET', '/endpoint'), 'DescribeEndpoint');
    assert.equal(operationOf('DELETE', '/things/t1'), 'DeleteThing');
    assert.equal(operationOf('PUT', '/thing-groups/removeThingFromThingGroup'), 'RemoveThingFromThingGroup');
    assert.equal(operationOf('PUT', '/job-templates/tpl'), 'CreateJobTemplate');
    assert.equal(operationOf('GET', '/job-templates/tpl'), 'DescribeJobTemplate');
    assert.equal(operationOf('GET', '/job-templates'), 'ListJobTemplates');
    assert.equal(operationOf('DELETE', '/job-templates/tpl'), 'DeleteJobTemplate');
    assert.equal(ROUTES.length, 24);
    assert.equal(new Set(ROUTES.map((r) => r.operation)).size, ROUTES.length, 'one route per operation');
  });

  test('the literal add/removeThingToThingGroup paths win over the {thingGroupName} label', () => {
    assert.equal(operationOf('PUT', '/thing-groups/addThingToThingGroup'), 'AddThingToThingGroup');
    assert.equal(operationOf('PUT', '/thing-groups/removeThingFromThingGroup'), 'RemoveThingFromThingGroup');
  });

  test('labels are percent-decoded; malformed encoding is reported, unknown paths are none', () => {
    const m = matchRoute('GET', '/things/fleet%3Adev-1/jobs/job%2D1');
    assert.equal(m.kind, 'match');
    if (m.kind === 'match') assert.deepEqual(m.labels, { thingName: 'fleet:dev-1', jobId: 'job-1' });
    assert.deepEqual(matchRoute('GET', '/things/%E0%A4%A'), { kind: 'badLabel', label: 'thingName' });
    assert.deepEqual(matchRoute('GET', '/managed-job-templates'), { kind: 'none' });
    assert.deepEqual(matchRoute('PATCH', '/jobs/j1'), { kind: 'none' });
    assert.deepEqual(matchRoute('GET', '/jobs/a/b/c/d'), { kind: 'none' });
  });
});

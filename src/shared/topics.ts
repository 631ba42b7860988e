/**
 * MQTT topic names shared by the device side and the cloud side. This is the wire contract between the
 * two; neither side imports the other's internals, only this file.
 *
 * AWS IoT Jobs MQTT API: "Jobs device MQTT API operations" in the AWS IoT developer guide
 * (docs/protocol.md, Topics). All topics begin `$aws/things/{thingName}/jobs/`.
 */
export const JOBS_PREFIX = (thingName: string): string => `$aws/things/${thingName}/jobs`;

export const jobsTopics = (thingName: string) => {
  const p = JOBS_PREFIX(thingName);
  return {
    all: `${p}/#`,
    get: `${p}/get`,
    getAccepted: `${p}/get/accepted`,
    getRejected: `${p}/get/rejected`,
    startNext: `${p}/start-next`,
    startNextAccepted: `${p}/start-next/accepted`,
    startNextRejected: `${p}/start-next/rejected`,
    describe: (jobId: string) => `${p}/${jobId}/get`,
    describeAccepted: (jobId: string) => `${p}/${jobId}/get/accepted`,
    describeRejected: (jobId: string) => `${p}/${jobId}/get/rejected`,
    update: (jobId: string) => `${p}/${jobId}/update`,
    updateAccepted: (jobId: string) => `${p}/${jobId}/update/accepted`,
    updateRejected: (jobId: string) => `${p}/${jobId}/update/rejected`,
    notify: `${p}/notify`,
    notifyNext: `${p}/notify-next`,
  };
};

/** The original JobProgress.py published progress to `CarVi/test/firmware/<IMEI>`. */
export const DEFAULT_PROGRESS_PREFIX = 'CarVi/test/firmware';
export const progressTopic = (thingName: string, prefix = DEFAULT_PROGRESS_PREFIX): string =>
  `${prefix}/${thingName}`;

/** AWS's patterns (docs/protocol.md, Topics). */
export const THING_NAME_PATTERN = /^[a-zA-Z0-9:_-]{1,128}$/;
export const JOB_ID_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

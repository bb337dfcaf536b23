/**
 * The longest delay a Node timer takes, in ms (2^31 - 1, 24.8 days): `setTimeout` and `setInterval` fire a
 * longer one after 1 ms, with a TimeoutOverflowWarning, so a longer wait is cut in turns or refused.
 */
export const timerMsMax = 2 ** 31 - 1;

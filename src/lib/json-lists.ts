/** SQL over JSON arrays kept in a column (the packed index rows). */

/** The array in `column` without the values of the JSON array `param` (a bound parameter). */
export const jsonArrayWithout = (column: string, param: string) =>
  `(SELECT json_group_array(j.value) FROM json_each(${column}) j
    WHERE j.value NOT IN (SELECT value FROM json_each(${param})))`;

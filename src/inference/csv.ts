/**
 * CSV as RFC 4180 writes it (and Python's csv module, which writes the WD14
 * taggers' selected_tags.csv): fields separated by commas, records by CRLF or
 * LF; a field in double quotes may hold commas, line breaks and doubled
 * quotes (`""` is one `"`). A quote inside an unquoted field is kept as it
 * is, as Python's reader does. A byte-order mark at the start is dropped.
 */
export class CsvError extends Error {
  constructor(readonly line: number, message: string) {
    super(`line ${line}: ${message}`);
  }
}

/** The records of `text`, each a list of fields; blank lines are skipped. */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let quoteLine = 1;
  const endRecord = () => {
    record.push(field);
    if (record.length > 1 || record[0] !== '') records.push(record);
    record = [];
    field = '';
  };
  const start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (let at = start; at < text.length; at += 1) {
    const char = text[at]!;
    if (quoted) {
      if (char === '"') {
        if (text[at + 1] === '"') {
          field += '"';
          at += 1;
        } else {
          quoted = false;
          const next = text[at + 1];
          if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
            throw new CsvError(line, `a quoted field is followed by ${JSON.stringify(next)} instead of a comma or the end of the line`);
          }
        }
      } else {
        if (char === '\n') line += 1;
        field += char;
      }
    } else if (char === '"' && field === '') {
      quoted = true;
      quoteLine = line;
    } else if (char === ',') {
      record.push(field);
      field = '';
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[at + 1] === '\n') at += 1;
      endRecord();
      line += 1;
    } else {
      field += char;
    }
  }
  if (quoted) throw new CsvError(quoteLine, 'a quoted field is never closed');
  if (field !== '' || record.length > 0) endRecord();
  return records;
}

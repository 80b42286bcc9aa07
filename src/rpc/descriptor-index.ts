/**
 * The Protobuf files behind the served services, indexed for server reflection: by file name and
 * by every fully qualified symbol they declare (messages, enums, services, methods, extensions).
 * Built from the descriptors embedded in the generated code, so it always matches what is served.
 */
import { type DescFile, type DescMessage, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";

export class DescriptorIndex {
  readonly services: readonly string[];
  readonly #files = new Map<string, DescFile>();
  readonly #symbols = new Map<string, DescFile>();
  readonly #messages = new Set<string>();
  readonly #extensions = new Map<string, { file: DescFile; numbers: number[] }>();
  readonly #encoded = new Map<string, Uint8Array>();

  constructor(services: readonly DescService[]) {
    this.services = services.map((s) => s.typeName).sort();
    for (const service of services) this.#addFile(service.file);
  }

  fileByName(name: string): DescFile | undefined {
    return this.#files.get(name);
  }

  /** The file declaring `symbol`; a field or enum value name resolves to its enclosing type's file. */
  fileContainingSymbol(symbol: string): DescFile | undefined {
    let name = symbol.startsWith(".") ? symbol.slice(1) : symbol;
    for (;;) {
      const file = this.#symbols.get(name);
      if (file) return file;
      const dot = name.lastIndexOf(".");
      if (dot <= 0) return undefined;
      name = name.slice(0, dot);
    }
  }

  fileContainingExtension(typeName: string, number: number): DescFile | undefined {
    const ext = this.#extensions.get(`${typeName}#${number}`);
    return ext?.file;
  }

  /** Extension numbers of a message type, or undefined when the type is unknown. */
  extensionNumbers(typeName: string): number[] | undefined {
    if (!this.#messages.has(typeName)) return undefined;
    const out: number[] = [];
    for (const [key, ext] of this.#extensions) {
      if (key.startsWith(`${typeName}#`)) out.push(...ext.numbers);
    }
    return out;
  }

  /**
   * The serialized file and, breadth first, every file it imports that this stream has not been
   * sent yet. The requested file is always included, even when sent before.
   */
  withDependencies(file: DescFile, sent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const queue: DescFile[] = [file];
    const seen = new Set<string>();
    for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
      const name = f.proto.name;
      if (seen.has(name)) continue;
      seen.add(name);
      if (out.length === 0 || !sent.has(name)) {
        out.push(this.#encode(f));
        sent.add(name);
      }
      queue.push(...f.dependencies);
    }
    return out;
  }

  #encode(file: DescFile): Uint8Array {
    let bytes = this.#encoded.get(file.proto.name);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.#encoded.set(file.proto.name, bytes);
    }
    return bytes;
  }

  #addFile(file: DescFile): void {
    if (this.#files.has(file.proto.name)) return;
    this.#files.set(file.proto.name, file);
    for (const dep of file.dependencies) this.#addFile(dep);
    for (const message of file.messages) this.#addMessage(file, message);
    for (const e of file.enums) this.#symbols.set(e.typeName, file);
    for (const ext of file.extensions)
      this.#addExtension(file, ext.typeName, ext.extendee.typeName, ext.number);
    for (const service of file.services) {
      this.#symbols.set(service.typeName, file);
      for (const method of service.methods) this.#symbols.set(`${service.typeName}.${method.name}`, file);
    }
  }

  #addMessage(file: DescFile, message: DescMessage): void {
    this.#symbols.set(message.typeName, file);
    this.#messages.add(message.typeName);
    for (const nested of message.nestedMessages) this.#addMessage(file, nested);
    for (const e of message.nestedEnums) this.#symbols.set(e.typeName, file);
    for (const ext of message.nestedExtensions) {
      this.#addExtension(file, ext.typeName, ext.extendee.typeName, ext.number);
    }
  }

  #addExtension(file: DescFile, name: string, extendee: string, number: number): void {
    this.#symbols.set(name, file);
    this.#extensions.set(`${extendee}#${number}`, { file, numbers: [number] });
  }
}

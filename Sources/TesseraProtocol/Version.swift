// The product version, shared by tesserad, tessera and GetInfo.
public let tesseraVersion = "0.1.0"

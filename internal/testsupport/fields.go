package testsupport

import (
	"reflect"
	"testing"
)

// FillFields sets every exported field of the struct v points to to a
// value that is not zero, and fails for a field of a type it does not
// know, so that a field added to a Cmd is noticed here.
func FillFields(t *testing.T, v any) {
	t.Helper()
	s := reflect.ValueOf(v).Elem()
	for i := range s.NumField() {
		f, sf := s.Field(i), s.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("v" + sf.Name)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Uint16, reflect.Uint32:
			f.SetUint(uint64(10 + i))
		case reflect.Slice:
			switch f.Type().Elem().Kind() {
			case reflect.String:
				f.Set(reflect.ValueOf([]string{"v" + sf.Name, "w" + sf.Name}))
			case reflect.Uint8:
				f.SetBytes([]byte("v" + sf.Name))
			default:
				t.Fatalf("%s.%s: FillFields does not know %s", s.Type(), sf.Name, f.Type())
			}
		default:
			t.Fatalf("%s.%s: FillFields does not know %s", s.Type(), sf.Name, f.Type())
		}
	}
}

// CheckFilled fails for an exported field of the struct v points to that
// holds its zero value: one a conversion did not carry.
func CheckFilled(t *testing.T, v any) {
	t.Helper()
	s := reflect.ValueOf(v).Elem()
	for i := range s.NumField() {
		if s.Type().Field(i).IsExported() && s.Field(i).IsZero() {
			t.Errorf("%s.%s was not converted", s.Type(), s.Type().Field(i).Name)
		}
	}
}
